"""Zero-shot classification (pe_av.classify, pe-av classify): equal to the manual computation from the
model's get_*_embeds, heads and pair logit scale/bias."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from cli_helpers import make_checkpoint, run, write_clips
from tiny_configs import build

import pe_av
from pe_av import PeAudioModel, classify
from pe_av.demo import demo_model, demo_processor
from pe_av.tasks.templates import TEMPLATE_SETS, check_templates, read_templates

LABELS = ["dog barking", "rain", "a pure tone"]


@pytest.fixture(scope="module")
def model():
    m = demo_model(seed=0)
    with torch.no_grad():  # distinct, non-trivial scales and biases per pair, so a mix-up would show
        m.audio_model.text_audio_logit_scale.fill_(0.7)
        m.audio_model.text_audio_logit_bias.fill_(-0.3)
        m.video_model.text_video_logit_scale.fill_(1.3)
        m.video_model.text_video_logit_bias.fill_(0.2)
        m.text_audio_video_logit_scale.fill_(0.4)
        m.text_audio_video_logit_bias.fill_(-1.1)
    return m


@pytest.fixture(scope="module")
def processor():
    return demo_processor()


def clips():
    rng = np.random.default_rng(1)
    return [rng.uniform(-0.4, 0.4, 4800).astype(np.float32), np.sin(np.arange(7000) / 7).astype(np.float32),
            rng.uniform(-0.1, 0.1, 3900).astype(np.float32)]  # as many clips as labels: forward pairs them


def videos():
    rng = np.random.default_rng(2)
    return [rng.integers(0, 256, (3, 28, 28, 3), dtype=np.uint8) for _ in range(3)]


def forward(model, processor, target):
    """The model's own logits for (media, bare label) pairs, from one forward pass."""
    text = processor(text=LABELS)
    with torch.no_grad():
        if target == "audio":
            inputs = processor(audio=clips())
            out = model(input_ids=text["input_ids"], attention_mask=text["attention_mask"],
                        input_values=inputs["input_values"], padding_mask=inputs["padding_mask"])
            return out.logits_audio_text
        if target == "video":
            inputs = processor(videos=videos())
            out = model(input_ids=text["input_ids"], attention_mask=text["attention_mask"],
                        pixel_values_videos=inputs["pixel_values_videos"],
                        padding_mask_videos=inputs["padding_mask_videos"])
            return out.logits_video_text
        inputs = processor(audio=clips(), videos=videos())
        out = model(input_ids=text["input_ids"], attention_mask=text["attention_mask"], **{
            k: inputs[k] for k in ("input_values", "padding_mask", "pixel_values_videos", "padding_mask_videos")})
        return out.logits_audio_video_text


@pytest.mark.parametrize("target", ["audio", "video", "audio_video"])
def test_one_template_gives_the_models_own_logits(model, processor, target):
    """With the bare label as the only template the logits are forward's logits_*_text, whose scale and
    bias are the pair's own (the fixture makes them all different)."""
    inputs = {"audio": clips(), "video": videos(), "audio_video": videos()}[target]
    options = {"audio": clips()} if target == "audio_video" else {}
    result = classify(model, processor, inputs, LABELS, templates="none", target=target, progress=False, **options)
    expected = forward(model, processor, target)
    torch.testing.assert_close(result.logits, expected, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(result.probs, expected.sigmoid(), atol=1e-6, rtol=1e-5)


def test_ensemble_equals_the_manual_computation(model, processor):
    templates = ["the sound of {}", "{} far away", "a loud {}"]
    result = classify(model, processor, clips(), LABELS, templates=templates, target="audio", progress=False)
    with torch.no_grad():
        audio = processor(audio=clips())
        media = model.get_audio_embeds(audio["input_values"], audio["padding_mask"])
        rows = []
        for label in LABELS:
            text = processor(text=[t.format(label) for t in templates])
            raw = model.get_text_audio_embeds(text["input_ids"], text["attention_mask"])
            direction = F.normalize(F.normalize(raw, dim=-1).mean(0), dim=-1)
            rows.append(direction * raw.norm(dim=-1).mean())
        labels = torch.stack(rows)
        logits = media @ labels.T * model.audio_model.text_audio_logit_scale + model.audio_model.text_audio_logit_bias
    torch.testing.assert_close(result.logits, logits, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(result.probs, logits.sigmoid())
    single = classify(model, processor, clips(), LABELS, templates=templates, target="audio", multi_label=False,
                      progress=False)
    torch.testing.assert_close(single.probs, logits.softmax(dim=-1))
    torch.testing.assert_close(single.probs.sum(-1), torch.ones(3))


def test_defaults_pick_the_template_set_of_the_target(model, processor):
    sounds = classify(model, processor, clips(), LABELS, target="audio", progress=False)
    explicit = classify(model, processor, clips(), LABELS, templates=list(TEMPLATE_SETS["sounds"]), target="audio",
                        progress=False)
    torch.testing.assert_close(sounds.logits, explicit.logits)
    actions = classify(model, processor, videos(), LABELS, target="video", progress=False)
    other = classify(model, processor, videos(), LABELS, templates="sounds", target="video", progress=False)
    assert not torch.allclose(actions.logits, other.logits)


def test_top_k_and_rows(model, processor):
    result = classify(model, processor, clips(), LABELS, templates="none", target="audio", progress=False)
    for i, best in enumerate(result.top(2)):
        order = result.probs[i].argsort(descending=True)[:2].tolist()
        assert [label for label, _ in best] == [LABELS[j] for j in order]
    rows = result.rows(1)
    assert [row["rank"] for row in rows] == [1, 1, 1]
    assert rows[0]["probability"] == pytest.approx(float(result.probs[0].max()))


def test_pe_audio_model(processor):
    model = build(PeAudioModel)
    result = classify(model, processor, clips(), LABELS, templates="none", progress=False)
    assert result.target == "audio"
    text, audio = processor(text=LABELS), processor(audio=clips())
    with torch.no_grad():
        expected = model(text["input_ids"], audio["input_values"], text["attention_mask"], audio["padding_mask"])
    torch.testing.assert_close(result.logits, expected.logits_audio_text, atol=1e-5, rtol=1e-5)
    with pytest.raises(ValueError, match="audio\\+video"):
        classify(model, processor, clips(), LABELS, target="audio_video")


@pytest.mark.parametrize("labels, match", [([], "non-empty"), ("rain", "non-empty list"), (["a", "a"], "distinct"),
                                           (["a", ""], "labels\\[1\\]")])
def test_bad_labels(model, processor, labels, match):
    with pytest.raises(ValueError, match=match):
        classify(model, processor, clips(), labels, target="audio")


def test_bad_templates_and_options(model, processor, tmp_path):
    with pytest.raises(ValueError, match="exactly one"):
        classify(model, processor, clips(), LABELS, templates=["no slot"], target="audio")
    with pytest.raises(ValueError, match="sounds"):
        check_templates("birds")
    with pytest.raises(ValueError, match="target"):
        classify(model, processor, clips(), LABELS, target="text")
    with pytest.raises(TypeError, match="multi_label"):
        classify(model, processor, clips(), LABELS, target="audio", multi_label="yes")
    path = tmp_path / "t.txt"
    path.write_text("# mine\nthe {} sound\n\n{} nearby\n")
    assert read_templates(path) == ["the {} sound", "{} nearby"]
    path.write_text("{} and {}\n")
    with pytest.raises(ValueError, match="t.txt"):
        read_templates(path)


def test_bad_input_is_skipped_and_named(model, processor):
    failures = []
    bad = np.full(4800, np.nan, np.float32)
    result = classify(model, processor, [clips()[0], bad, *clips()[1:]], LABELS, target="audio", templates="none",
                      on_error="skip", failures=failures, progress=False)
    assert [f.index for f in failures] == [1] and "NaN" in failures[0].reason
    assert result.logits.shape == (3, 3) and len(result.inputs) == 3
    torch.testing.assert_close(result.logits, forward(model, processor, "audio"), atol=1e-5, rtol=1e-5)


# ---------------------------------------------------------------------- CLI


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    return make_checkpoint(tmp_path_factory.mktemp("classify") / "tiny")


def test_cli_json_equals_the_api(checkpoint, tmp_path):
    files = write_clips(tmp_path, 2)
    status, out, err = run(["classify", "--model", checkpoint, *files, "--labels", *LABELS, "--json", "--top-k", "2",
                            "--no-progress"])
    assert status == 0, err
    rows = json.loads(out)
    model = pe_av.PeAudioVideoModel.from_pretrained(checkpoint)
    processor = pe_av.PeAudioVideoProcessor.from_pretrained(checkpoint)
    expected = classify(model, processor, files, LABELS, target="audio", progress=False).rows(2)
    assert [(r["input"], r["rank"], r["label"]) for r in rows] == [(r["input"], r["rank"], r["label"]) for r in expected]
    np.testing.assert_allclose([r["probability"] for r in rows], [r["probability"] for r in expected], rtol=1e-5)


def test_cli_writes_csv_atomically_and_never_overwrites(checkpoint, tmp_path):
    files = write_clips(tmp_path, 1)
    (tmp_path / "labels.txt").write_text("dog barking\nrain\n")
    (tmp_path / "templates.txt").write_text("the sound of {}\n{} outside\n")
    out = tmp_path / "scores.csv"
    argv = ["classify", "--model", checkpoint, *files, "--labels-file", tmp_path / "labels.txt", "--templates",
            tmp_path / "templates.txt", "--out", out, "--softmax", "--no-progress"]
    status, _, err = run(argv)
    assert status == 0, err
    lines = out.read_text().splitlines()
    assert lines[0] == "input,rank,label,probability,logit" and len(lines) == 3
    assert sum(float(line.split(",")[3]) for line in lines[1:]) == pytest.approx(1.0, abs=1e-5)
    status, _, err = run(argv)
    assert status == 1 and "already exists" in err and "--overwrite" in err
    assert run([*argv, "--overwrite"])[0] == 0


def test_cli_skips_a_bad_file_and_exits_1(checkpoint, tmp_path):
    files = write_clips(tmp_path, 1)
    bad = tmp_path / "bad.wav"
    bad.write_bytes(b"not audio at all")
    status, out, err = run(["classify", "--model", checkpoint, files[0], bad, "--labels", "rain", "--csv",
                            "--no-progress", "--target", "audio"])
    assert status == 1 and f"skipped {bad}" in err
    assert out.splitlines()[1].startswith(files[0])


def test_cli_usage_errors(checkpoint, tmp_path):
    files = write_clips(tmp_path, 1)
    with pytest.raises(SystemExit):
        run(["classify", "--model", checkpoint, *files])  # no labels
    status, _, err = run(["classify", "--model", checkpoint, *files, "--labels", "a", "--templates", "nope"])
    assert status == 1 and "--templates" in err
