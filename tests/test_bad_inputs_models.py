"""Every public model entry rejects malformed input with an error that names the argument.

Each entry (``forward``, ``get_*_embeds``, ``text_embedding``) is called with valid inputs except for
one argument, which gets one bad value from the table of its kind; the error must be the expected
``TypeError``/``ValueError`` and its message must name the argument. Cross-argument faults
(mismatched batches, masks without inputs, unpaired padding) follow; the documented accepted forms
(what is *not* an error) are in tests/test_accepted_inputs.py. See the README's "Input handling" section for the decisions.
"""

from __future__ import annotations

import pytest
import torch
from model_inputs import AUDIO_ARGS, SAMPLES, TEXT_ARGS, VIDEO_ARGS, tiny_models, valid, valid_args
from tiny_configs import HOP, VOCAB

from pe_av import PeAudioVideoModel


@pytest.fixture(scope="module")
def models():
    return tiny_models()


# --------------------------------------------------------------------------------------------------
# bad values, by kind: (case id, make(valid value) -> bad value, error type, message regex).
# "{arg}" in the regex is the argument's name.


def with_value(value, index, fill):
    value = value.clone()
    value[index] = fill
    return value


ZERO_BATCH = r"{arg} (is empty|\(batch 0\)|has 0)"  # the modality check or the same-batch check names it

AUDIO_CASES = [
    ("list", lambda v: v.tolist(), TypeError, r"{arg} must be a torch\.Tensor"),
    ("numpy", lambda v: v.numpy(), TypeError, r"{arg} must be a torch\.Tensor.*numpy"),
    ("int16", lambda v: (v * 1000).to(torch.int16), TypeError, r"{arg} must hold floating point"),
    ("bool", lambda v: v > 0, TypeError, r"{arg} must hold floating point"),
    ("complex", lambda v: v.to(torch.complex64), TypeError, r"{arg} must hold floating point"),
    ("rank1", lambda v: v[0, 0], ValueError, r"{arg} must have shape \(batch, 1, samples\)"),
    ("stereo", lambda v: v.expand(-1, 2, -1), ValueError, r"{arg} must have shape \(batch, 1, samples\)"),
    ("rank4", lambda v: v[:, None], ValueError, r"{arg} must have shape \(batch, 1, samples\)"),
    ("zero_samples", lambda v: v[..., :0], ValueError, r"{arg} is empty"),
    ("zero_batch", lambda v: v[:0], ValueError, ZERO_BATCH),
    ("nan", lambda v: with_value(v, (0, 0, 3), float("nan")), ValueError, r"{arg} holds NaN or Inf .* sample\(s\) \[0\]"),
    ("inf", lambda v: with_value(v, (1, 0, 0), float("-inf")), ValueError, r"{arg} holds NaN or Inf .* sample\(s\) \[1\]"),
    ("nan_in_padding", lambda v: with_value(v, (1, 0, -1), float("nan")), ValueError, r"{arg} holds NaN or Inf .*padding included"),
    ("overflow_on_cast", lambda v: v.double() * 1e300, ValueError, r"{arg} holds NaN or Inf .*after casting to torch\.float32"),
    ("meta", lambda v: v.to("meta"), ValueError, r"{arg} is on meta but the model is on cpu"),
]

VIDEO_CASES = [
    ("list", lambda v: v.tolist(), TypeError, r"{arg} must be a torch\.Tensor"),
    ("numpy", lambda v: v.numpy(), TypeError, r"{arg} must be a torch\.Tensor.*numpy"),
    ("uint8", lambda v: v.clamp(0, 1).mul(255).to(torch.uint8), TypeError, r"{arg} must hold normalized floating point"),
    ("int64", lambda v: v.long(), TypeError, r"{arg} must hold normalized floating point"),
    ("rank4", lambda v: v[0], ValueError, r"{arg} must have 5 dims"),
    ("rank6", lambda v: v[None], ValueError, r"{arg} must have 5 dims"),
    ("channels", lambda v: torch.cat([v, v[:, :, :1]], dim=2), ValueError, r"{arg} must have 3 channels"),
    ("frame_size", lambda v: v[..., :-1], ValueError, r"{arg} has frames of \(28, 27\) pixels"),
    ("zero_frames", lambda v: v[:, :0], ValueError, r"{arg} is empty"),
    ("zero_batch", lambda v: v[:0], ValueError, ZERO_BATCH),
    ("nan", lambda v: with_value(v, (1, 0, 0, 0, 0), float("nan")), ValueError, r"{arg} holds NaN or Inf .* sample\(s\) \[1\]"),
    ("inf", lambda v: with_value(v, (0, 2, 1, 5, 5), float("inf")), ValueError, r"{arg} holds NaN or Inf .* sample\(s\) \[0\]"),
    ("nan_in_padded_frame", lambda v: with_value(v, (1, 2), float("nan")), ValueError, r"{arg} holds NaN or Inf"),
    ("meta", lambda v: v.to("meta"), ValueError, r"{arg} is on meta but the model is on cpu"),
]

IMAGE_CASES = [
    ("list", lambda v: v.tolist(), TypeError, r"{arg} must be a torch\.Tensor"),
    ("numpy", lambda v: v.numpy(), TypeError, r"{arg} must be a torch\.Tensor.*numpy"),
    ("uint8", lambda v: v.clamp(0, 1).mul(255).to(torch.uint8), TypeError, r"{arg} must hold normalized floating point"),
    ("rank3", lambda v: v[0], ValueError, r"{arg} must have 4 dims"),
    ("rank5", lambda v: v[None], ValueError, r"{arg} must have 4 dims"),
    ("channels", lambda v: v[:, :1], ValueError, r"{arg} must have 3 channels"),
    ("image_size", lambda v: v[..., :-2, :], ValueError, r"{arg} has frames of \(26, 28\) pixels"),
    ("zero_batch", lambda v: v[:0], ValueError, r"{arg} is empty"),
    ("nan", lambda v: with_value(v, (1, 0, 0, 0), float("nan")), ValueError, r"{arg} holds NaN or Inf .* sample\(s\) \[1\]"),
    ("meta", lambda v: v.to("meta"), ValueError, r"{arg} is on meta but the model is on cpu"),
]

IDS_CASES = [
    ("list", lambda v: v.tolist(), TypeError, r"{arg} must be a torch\.Tensor"),
    ("numpy", lambda v: v.numpy(), TypeError, r"{arg} must be a torch\.Tensor.*numpy"),
    ("float", lambda v: v.float(), TypeError, r"{arg} must hold integer token ids"),
    ("bool", lambda v: v > 3, TypeError, r"{arg} must hold integer token ids"),
    ("rank1", lambda v: v[0], ValueError, r"{arg} must have shape \(batch, seq_len\)"),
    ("rank3", lambda v: v[:, :, None], ValueError, r"{arg} must have shape \(batch, seq_len\)"),
    ("zero_tokens", lambda v: v[:, :0], ValueError, r"{arg} is empty"),
    ("zero_batch", lambda v: v[:0], ValueError, ZERO_BATCH),
    ("out_of_vocab", lambda v: with_value(v, (0, 1), VOCAB), ValueError, r"{arg} must lie in \[0, 53\)"),
    ("negative", lambda v: with_value(v, (1, 0), -1), ValueError, r"{arg} must lie in \[0, 53\)"),
    ("meta", lambda v: v.to("meta"), ValueError, r"{arg} is on meta but the model is on cpu"),
]


def mask_cases(unit: str, item: str, extra=()):
    """Bad values of a ``(batch, length)`` 0/1 mask."""
    return [
        ("short", lambda v: v[:, :-1], ValueError, r"{arg} must have shape \(batch, length\) = \(2, \d+\), got \(2, \d+\)"),
        ("long", lambda v: torch.cat([v, torch.zeros_like(v[:, :1])], dim=1), ValueError, r"{arg} must have shape \(batch, length\)"),
        ("batch_plus_one", lambda v: torch.cat([v, v[:1]]), ValueError, r"{arg} must have shape \(batch, length\) = \(2,"),
        ("batch_minus_one", lambda v: v[:1], ValueError, r"{arg} must have shape \(batch, length\) = \(2,"),
        ("rank1", lambda v: v[0], ValueError, r"{arg} must have shape \(batch, length\)"),
        ("rank3", lambda v: v[:, None], ValueError, r"{arg} must have shape \(batch, length\)"),
        ("value_2", lambda v: v * 2, ValueError, r"{arg} must contain only 0 and 1"),
        ("float_half", lambda v: v.float() * 0.5, ValueError, r"{arg} must contain only 0 and 1"),
        ("float_nan", lambda v: v.float().masked_fill(v == 0, float("nan")), ValueError, r"{arg} must contain only 0 and 1"),
        ("complex", lambda v: v.to(torch.complex64), TypeError, r"{arg} must be bool, integer or float 0/1 values"),
        ("list", lambda v: v.tolist(), TypeError, r"{arg} must be a torch\.Tensor"),
        ("numpy", lambda v: v.numpy(), TypeError, r"{arg} must be a torch\.Tensor.*numpy"),
        ("meta", lambda v: v.to("meta"), ValueError, r"{arg} is on meta but the model is on cpu"),
        ("all_padding_row", lambda v: with_value(v, 1, 0), ValueError, rf"{{arg}} marks every {unit} of {item}\(s\) \[1\] as padding"),
        *extra,
    ]


TEXT_MASK_CASES = mask_cases(
    "token", "text",
    extra=[("left_padded", lambda v: v.flip(1), ValueError, r"{arg} marks position 0 of text\(s\) \[1\] as padding.*pad on the right")],
)

CASES = {
    "audio": AUDIO_CASES,
    "audio_mask": mask_cases("sample", "clip"),
    "video": VIDEO_CASES,
    "video_mask": mask_cases("frame", "video"),
    "ids": IDS_CASES,
    "text_mask": TEXT_MASK_CASES,
    "image": IMAGE_CASES,
}

# --------------------------------------------------------------------------------------------------
# the entries: name -> (callable from the models, {argument: kind})


ENTRIES = {
    "PeAudioEncoder.forward": (lambda m: m["av"].audio_model.audio_encoder, AUDIO_ARGS),
    "PeVideoEncoder.forward": (lambda m: m["av"].video_model.video_encoder, VIDEO_ARGS),
    "PeAudioVideoEncoder.forward": (lambda m: m["av"].audio_video_encoder, {**AUDIO_ARGS, **VIDEO_ARGS}),
    "ModernBertModel.forward": (lambda m: m["av"].text_model, TEXT_ARGS),
    "ModernBertModel.text_embedding": (lambda m: m["av"].text_model.text_embedding, TEXT_ARGS),
    "PeVisionModel.forward": (lambda m: m["av"].video_model.video_encoder.embedder.vision_model, {"pixel_values": "image"}),
    "PeAudioModel.forward": (lambda m: m["av"].audio_model, {**TEXT_ARGS, **AUDIO_ARGS}),
    "PeAudioModel.get_text_audio_embeds": (lambda m: m["av"].audio_model.get_text_audio_embeds, TEXT_ARGS),
    "PeAudioModel.get_audio_embeds": (lambda m: m["av"].audio_model.get_audio_embeds, AUDIO_ARGS),
    "PeAudioFrameLevelModel.forward": (lambda m: m["frame"], {**TEXT_ARGS, **AUDIO_ARGS}),
    "PeAudioFrameLevelModel.get_text_audio_embeds": (lambda m: m["frame"].get_text_audio_embeds, TEXT_ARGS),
    "PeAudioFrameLevelModel.get_audio_embeds": (lambda m: m["frame"].get_audio_embeds, AUDIO_ARGS),
    "PeVideoModel.forward": (lambda m: m["av"].video_model, {**TEXT_ARGS, **VIDEO_ARGS}),
    "PeVideoModel.get_text_video_embeds": (lambda m: m["av"].video_model.get_text_video_embeds, TEXT_ARGS),
    "PeVideoModel.get_video_embeds": (lambda m: m["av"].video_model.get_video_embeds, VIDEO_ARGS),
    "PeAudioVideoModel.forward": (lambda m: m["av"], {**TEXT_ARGS, **AUDIO_ARGS, **VIDEO_ARGS}),
    "PeAudioVideoModel.get_text_audio_embeds": (lambda m: m["av"].get_text_audio_embeds, TEXT_ARGS),
    "PeAudioVideoModel.get_text_video_embeds": (lambda m: m["av"].get_text_video_embeds, TEXT_ARGS),
    "PeAudioVideoModel.get_text_audio_video_embeds": (lambda m: m["av"].get_text_audio_video_embeds, TEXT_ARGS),
    "PeAudioVideoModel.get_audio_embeds": (lambda m: m["av"].get_audio_embeds, AUDIO_ARGS),
    "PeAudioVideoModel.get_video_embeds": (lambda m: m["av"].get_video_embeds, VIDEO_ARGS),
    "PeAudioVideoModel.get_audio_video_embeds": (lambda m: m["av"].get_audio_video_embeds, {**AUDIO_ARGS, **VIDEO_ARGS}),
    "PeAudioVideoModel.get_audio_plus_text_embeds": (lambda m: m["av"].get_audio_plus_text_embeds, {**TEXT_ARGS, **AUDIO_ARGS}),
    "PeAudioVideoModel.get_video_plus_text_embeds": (lambda m: m["av"].get_video_plus_text_embeds, {**TEXT_ARGS, **VIDEO_ARGS}),
}


def valid_inputs(entry: str) -> dict[str, torch.Tensor]:
    return valid_args(ENTRIES[entry][1])


def call(models, entry: str, **inputs):
    fn = ENTRIES[entry][0](models)
    with torch.no_grad():
        return fn(**inputs)


BAD_INPUTS = [
    pytest.param(entry, arg, case, error, regex, id=f"{entry}-{arg}-{case}")
    for entry, (_, args) in ENTRIES.items()
    for arg, kind in args.items()
    for case, _, error, regex in CASES[kind]
]
MAKERS = {(kind, case): make for kind, cases in CASES.items() for case, make, _, _ in cases}


@pytest.mark.parametrize("entry, arg, case, error, regex", BAD_INPUTS)
def test_bad_input_is_named(models, entry, arg, case, error, regex):
    inputs = valid_inputs(entry)
    inputs[arg] = MAKERS[(ENTRIES[entry][1][arg], case)](inputs[arg])
    with pytest.raises(error, match=regex.format(arg=arg)):
        call(models, entry, **inputs)


@pytest.mark.parametrize("entry", sorted(ENTRIES))
def test_valid_inputs_pass(models, entry):
    """The baseline of the table: with no argument spoiled, every entry runs and gives finite numbers."""
    out = call(models, entry, **valid_inputs(entry))
    tensors = [out] if isinstance(out, torch.Tensor) else [getattr(out, k) for k in out.keys()]
    tensors = [t for t in tensors if isinstance(t, torch.Tensor) and t.is_floating_point()]
    assert tensors and all(bool(torch.isfinite(t).all()) for t in tensors)


# --------------------------------------------------------------------------------------------------
# faults across arguments


MASK_OF = {"input_ids": "attention_mask", "input_values": "padding_mask", "pixel_values_videos": "padding_mask_videos"}


def subset(entry, *args):
    inputs = valid_inputs(entry)
    return {k: v for k, v in inputs.items() if k in args}


@pytest.mark.parametrize(
    "entry, shrink, regex",
    [
        ("PeAudioVideoModel.forward", "input_ids", r"several modalities .* input_ids has 1, input_values has 2"),
        ("PeAudioVideoModel.forward", "input_values", r"several modalities .* input_values has 1"),
        ("PeAudioVideoModel.forward", "pixel_values_videos", r"several modalities .* pixel_values_videos has 1"),
        ("PeAudioVideoEncoder.forward", "input_values", r"input_values \(batch 1\) and pixel_values_videos \(batch 2\)"),
        ("PeAudioVideoEncoder.forward", "pixel_values_videos", r"input_values \(batch 2\) and pixel_values_videos \(batch 1\)"),
        ("PeAudioVideoModel.get_audio_video_embeds", "pixel_values_videos", r"pixel_values_videos \(batch 1\)"),
        ("PeAudioVideoModel.get_audio_plus_text_embeds", "input_ids", r"get_audio_plus_text_embeds .* input_ids has 1"),
        ("PeAudioVideoModel.get_video_plus_text_embeds", "pixel_values_videos",
         r"get_video_plus_text_embeds .* pixel_values_videos has 1"),
    ],
)
def test_mismatched_batches_between_modalities(models, entry, shrink, regex):
    """One modality (and its mask) holds one sample fewer than the others."""
    inputs = valid_inputs(entry)
    for key in (shrink, MASK_OF[shrink]):
        inputs[key] = inputs[key][:1]
    with pytest.raises(ValueError, match=regex):
        call(models, entry, **inputs)


@pytest.mark.parametrize("pairs", [("input_ids", "input_values"), ("input_ids", "pixel_values_videos"),
                                   ("input_ids", "input_values", "pixel_values_videos")])
def test_every_pairing_path_checks_batches_before_running(models, pairs):
    """PeAudioVideoModel pairs its modalities (as the reference): a batch mismatch is caught up front."""
    inputs = subset("PeAudioVideoModel.forward", *pairs)
    inputs["input_ids"] = torch.cat([inputs["input_ids"], inputs["input_ids"][:1]])
    with pytest.raises(ValueError, match=r"same batch size .* input_ids has 3"):
        call(models, "PeAudioVideoModel.forward", **inputs)
    with pytest.raises(ValueError, match=r"return_loss=True needs the same batch size"):
        call(models, "PeAudioVideoModel.forward", return_loss=True, **inputs)


@pytest.mark.parametrize("entry, text_name, other", [
    ("PeAudioModel.forward", "caption per clip", "input_values"),
    ("PeAudioFrameLevelModel.forward", "caption per clip", "input_values"),
    ("PeVideoModel.forward", "caption per video", "pixel_values_videos"),
])
def test_two_tower_models_allow_retrieval_but_not_unpaired_loss(models, entry, text_name, other):
    """Documented: PeAudioModel / PeVideoModel score n clips against m captions; the loss needs pairs."""
    inputs = subset(entry, "input_ids", other)
    inputs["input_ids"] = torch.cat([inputs["input_ids"], inputs["input_ids"][:1]])
    out = call(models, entry, **inputs)
    logits = getattr(out, "logits_audio_text", None)
    logits = logits if logits is not None else out.logits_video_text
    assert logits.shape[:2] == (2, 3)
    with pytest.raises(ValueError, match=rf"return_loss=True needs one {text_name}"):
        call(models, entry, return_loss=True, **inputs)


@pytest.mark.parametrize("mask, modality", [("attention_mask", "input_ids"), ("padding_mask", "input_values"),
                                            ("padding_mask_videos", "pixel_values_videos")])
def test_mask_without_its_input(models, mask, modality):
    inputs = valid_inputs("PeAudioVideoModel.forward")
    del inputs[modality]
    with pytest.raises(ValueError, match=rf"{mask} was given without {modality}"):
        call(models, "PeAudioVideoModel.forward", **inputs)


def test_no_modality_and_loss_of_one(models):
    with pytest.raises(ValueError, match="give at least one of input_ids, input_values or pixel_values_videos"):
        call(models, "PeAudioVideoModel.forward")
    with pytest.raises(ValueError, match="return_loss=True needs two or more modalities"):
        call(models, "PeAudioVideoModel.forward", input_values=valid("audio"), return_loss=True)


HOLES = {"padding_mask": torch.tensor([[1] * HOP + [0] * HOP + [1] * 2 * HOP, [1] * SAMPLES]),
         "padding_mask_videos": torch.tensor([[1, 0, 1], [1, 1, 1]])}


@pytest.mark.parametrize("mask", sorted(HOLES))
@pytest.mark.parametrize("entry", ["PeAudioVideoEncoder.forward", "PeAudioVideoModel.get_audio_video_embeds",
                                   "PeAudioVideoModel.forward"])
def test_fusion_needs_right_padded_masks(models, entry, mask):
    """Alignment stretches each clip's valid frames over its valid audio tokens by count: holes would
    silently misalign them (as they do in the reference), so the fusion paths refuse them."""
    inputs = valid_inputs(entry)
    inputs[mask] = HOLES[mask]
    with pytest.raises(ValueError, match=rf"{mask} must be right-padded .* row\(s\) \[0\] have a 1 after a 0"):
        call(models, entry, **inputs)


def test_single_encoders_accept_masks_with_holes(models):
    """Documented: outside the fusion, a mask may have holes. Audio: a clip's valid region ends at its last
    valid sample and masked tokens inside it are hidden from attention; video: padded frames are skipped."""
    av = models["av"]
    with torch.no_grad():
        audio = av.audio_model.audio_encoder(valid("audio"), HOLES["padding_mask"])
        video = av.video_model.video_encoder(valid("video"), HOLES["padding_mask_videos"])
    assert audio.output_mask.tolist() == [[1, 0, 1, 1], [1, 1, 1, 1]]
    assert torch.isfinite(audio.pooler_output).all() and torch.isfinite(video.pooler_output).all()


def test_meta_model_with_cpu_inputs(models):
    """A device mix the other way round: the model on meta, the inputs on CPU."""
    with torch.device("meta"):
        meta = PeAudioVideoModel(models["av"].config)
    with pytest.raises(ValueError, match="input_values is on cpu but the model is on meta"):
        meta.get_audio_embeds(valid("audio"))
    with pytest.raises(ValueError, match="pixel_values_videos is on cpu but the model is on meta"):
        meta.get_video_embeds(valid("video"))
    with pytest.raises(ValueError, match="input_ids is on cpu but the model is on meta"):
        meta.get_text_audio_embeds(valid("ids"))


@pytest.mark.parametrize("chunk", [0, -1, 1.5, True, "4"])
def test_bad_vision_chunk_size(models, chunk):
    with pytest.raises(ValueError, match="vision_chunk_size must be a positive integer"):
        call(models, "PeVideoEncoder.forward", pixel_values_videos=valid("video"), vision_chunk_size=chunk)


def test_overflow_when_cast_to_a_half_model(models):
    """Values finite in float32 but beyond float16's range are caught after the cast to the model's dtype."""
    encoder = models["av"].audio_model.audio_encoder
    half = type(encoder)(encoder.config).half().eval()
    with pytest.raises(ValueError, match=r"input_values holds NaN or Inf values \(after casting to torch\.float16\)"):
        half(valid("audio") * 1e5)


def test_finite_values_whose_sum_overflows_still_pass():
    """The finiteness check sums first (no temporaries); a sum that overflows on finite values must fall
    back to the exact check and pass, and a single NaN among them must still be found and named."""
    from pe_av.models.inputs import check_finite

    big = torch.full((2, 1, 64), 6e4, dtype=torch.float16)  # finite, but the fp16 sum is inf
    assert not torch.isfinite(big.sum())
    assert check_finite(big, "input_values") is big
    bad = big.clone()
    bad[1, 0, 5] = float("nan")
    with pytest.raises(ValueError, match=r"input_values holds NaN or Inf values .* sample\(s\) \[1\]"):
        check_finite(bad, "input_values")


@pytest.mark.parametrize("seed", range(4))
def test_valid_ends_equal_the_weighted_last_index(seed):
    """valid_ends (one byte per sample) gives what the full-length int64 weighting gave: one past the last
    valid position, 0 for a sample with none, the length for a full one; masks with holes included."""
    from pe_av.models.audio import valid_ends

    gen = torch.Generator().manual_seed(seed)
    mask = (torch.rand(6, 97, generator=gen) > 0.5).long()
    mask[0] = 0
    mask[1] = 1
    mask[2, 40:] = 0
    mask[3, :] = 0
    mask[3, 0] = 1
    expected = (mask * torch.arange(1, 98)).max(dim=-1).values
    for form in (mask, mask.bool()):
        assert torch.equal(valid_ends(form, 6, 97, mask.device), expected)
    assert torch.equal(valid_ends(None, 6, 97, mask.device), torch.full((6,), 97))
    assert torch.equal(valid_ends(torch.ones(3, 97, dtype=torch.long), 3, 97, mask.device), torch.full((3,), 97))
