"""Where the processor and the CLI meet the model: processor outputs pass the model's input checks, and
faults that only show at that boundary (left padding, a tokenizer bigger than the model's vocabulary,
tensors on the wrong device, broken checkpoints behind ``pe-av embed``) are clear errors.

The processors' own bad-input cases are in tests/test_processing_inputs.py; the CLI's in tests/test_cli.py.
"""

from __future__ import annotations

import contextlib
import io
import os
import shutil

import numpy as np
import pytest
import torch

from pe_av.cli import main
from pe_av.demo import TEXTS, demo_model, demo_processor
from pe_av.loading import SAFE_WEIGHTS_NAME

HOP = 1920  # the demo model's DAC hop


@pytest.fixture(scope="module")
def model():
    return demo_model()


@pytest.fixture(scope="module")
def processor():
    return demo_processor()


def clips():
    rng = np.random.default_rng(0)
    # lengths off the hop on purpose: the processor reflect-pads each clip, then zero-pads the batch
    return [rng.standard_normal(n).astype(np.float32) * 0.3 for n in (2 * HOP + 77, HOP - 5, 3 * HOP)]


def videos():
    rng = np.random.default_rng(1)
    return [rng.integers(0, 256, (n, 30, 30, 3), dtype=np.uint8) for n in (3, 1, 2)]


def test_processor_batches_pass_the_model_checks(model, processor):
    inputs = processor(text=TEXTS[:3], audio=clips(), videos=videos())
    with torch.no_grad():
        out = model(**inputs, return_loss=True)
    for name in out.keys():
        value = getattr(out, name)
        if isinstance(value, torch.Tensor):
            assert torch.isfinite(value).all(), name


def test_processed_clip_alone_equals_it_in_the_batch(processor):
    """End to end: a clip processed and encoded alone equals it processed and encoded in a padded batch
    (in float64, where only a real leak could show: float32 rounding of this model is ~1e-5)."""
    model = demo_model().double()

    def embed(**inputs):
        return model.get_audio_video_embeds(**processor(**inputs).to("cpu", torch.float64), return_audio_embeds=True)

    with torch.no_grad():
        together = embed(audio=clips(), videos=videos())
        for i, (clip, video) in enumerate(zip(clips(), videos())):
            alone = embed(audio=[clip], videos=[video])
            assert (alone.audio_embeds[0] - together.audio_embeds[i]).abs().max().item() <= 1e-10
            assert (alone.audio_video_embeds[0] - together.audio_video_embeds[i]).abs().max().item() <= 1e-10


def test_left_padded_text_is_refused(model, processor):
    tokenizer = processor.tokenizer
    side = tokenizer.padding_side
    tokenizer.padding_side = "left"
    try:
        inputs = processor(text=["a pure tone", "static"])
    finally:
        tokenizer.padding_side = side
    with pytest.raises(ValueError, match=r"attention_mask marks position 0 of text\(s\) \[1\] as padding"):
        model.get_text_audio_embeds(**inputs)


def test_tokenizer_larger_than_the_model_vocabulary(processor):
    small = demo_model()
    small.text_model.config.vocab_size = 6  # as if the checkpoint came with another model's tokenizer
    inputs = processor(text=["a pure tone"])
    with pytest.raises(ValueError, match=r"input_ids must lie in \[0, 6\) \(the vocabulary\)"):
        small.get_text_audio_embeds(**inputs)


def test_processor_outputs_on_another_device(model, processor):
    inputs = processor(text=["a pure tone"], audio=clips()[:1]).to("meta")
    with pytest.raises(ValueError, match="is on meta but the model is on cpu"):
        model(**inputs)


# --------------------------------------------------------------------------------------------------
# the CLI in front of a broken checkpoint: exit status 1 and one clear line, no traceback


def run(argv):
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        status = main([str(a) for a in argv])
    return status, err.getvalue()


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory, model, processor):
    directory = tmp_path_factory.mktemp("cli") / "tiny"
    model.save_pretrained(directory)
    processor.save_pretrained(directory)
    return directory


def truncate(directory):
    path = directory / SAFE_WEIGHTS_NAME
    path.write_bytes(path.read_bytes()[:1000])


def pickle_only(directory):
    os.remove(directory / SAFE_WEIGHTS_NAME)
    (directory / "pytorch_model.bin").write_bytes(b"\x80\x02}q\x00.")


def config_list(directory):
    (directory / "config.json").write_text("[]")


@pytest.mark.parametrize("damage, message", [
    (truncate, "cannot read"),
    (pickle_only, "holds only pickle weights"),
    (config_list, "must hold a JSON object"),
])
def test_embed_with_a_broken_checkpoint(checkpoint, tmp_path, damage, message):
    broken = tmp_path / "broken"
    shutil.copytree(checkpoint, broken)
    damage(broken)
    status, stderr = run(["embed", "--model", broken, "--text", TEXTS[0], "--no-progress"])
    assert status == 1 and stderr.startswith("pe-av embed: error:") and message in stderr, stderr
    assert "Traceback" not in stderr


def test_embed_works_on_the_intact_checkpoint(checkpoint):
    status, stderr = run(["embed", "--model", checkpoint, "--text", TEXTS[0], "--no-progress"])
    assert status == 0, stderr
