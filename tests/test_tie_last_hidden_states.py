"""``text_config.tie_last_hidden_states`` behaves as in transformers 5.24: with ``false``, the text tower's
``hidden_states[-1]`` is the last layer's raw output (no final norm) and the PE-AV models' text embeddings
come from it. Same checkpoint through transformers and pe_av, compared number for number."""

from __future__ import annotations

import pytest
import torch
from oracle import FP32_ATOL, max_abs_diff, perturb_parameters, transformers

import pe_av
from tiny_configs import AUDIO, TEXT

pytestmark = pytest.mark.oracle


@pytest.fixture(scope="module", params=[True, False], ids=["tied", "untied"])
def pair(request, tmp_path_factory):
    torch.manual_seed(0)
    config = transformers.PeAudioConfig(text_config={**TEXT, "tie_last_hidden_states": request.param},
                                        audio_config=AUDIO)
    reference = perturb_parameters(transformers.PeAudioModel(config).eval())
    directory = tmp_path_factory.mktemp("tie")
    reference.save_pretrained(directory)
    return request.param, reference, pe_av.PeAudioModel.from_pretrained(directory, attn_impl="eager")


def inputs():
    gen = torch.Generator().manual_seed(2)
    return dict(input_ids=torch.randint(1, 53, (2, 6), generator=gen), input_values=torch.randn(2, 1, 24, generator=gen))


def test_config_key_round_trips(pair, tmp_path):
    tied, _, ours = pair
    assert ours.config.text_config.tie_last_hidden_states is tied
    ours.save_pretrained(tmp_path)
    assert transformers.PeAudioConfig.from_pretrained(tmp_path).text_config.tie_last_hidden_states is tied


def test_text_embeddings_follow_the_key(pair):
    tied, reference, ours = pair
    with torch.no_grad():
        expected, got = reference(**inputs()), ours(**inputs())
        text_ref = reference.text_model(inputs()["input_ids"], output_hidden_states=True)
        text_ours = ours.text_model(inputs()["input_ids"], output_hidden_states=True)
    assert max_abs_diff(got.text_audio_embeds, expected.text_audio_embeds) <= FP32_ATOL
    assert max_abs_diff(got.logits_audio_text, expected.logits_audio_text) <= FP32_ATOL
    assert max_abs_diff(text_ours.hidden_states[-1], text_ref.hidden_states[-1]) <= FP32_ATOL
    normed = max_abs_diff(text_ours.hidden_states[-1], text_ours.last_hidden_state)
    assert (normed == 0.0) is tied  # untied: the raw last layer, which the final norm changes
    assert max_abs_diff(ours.text_model.text_embedding(inputs()["input_ids"]), text_ref.hidden_states[-1][:, 0]) <= FP32_ATOL
