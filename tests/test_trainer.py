"""``transformers.Trainer`` with pe_av models.

What Trainer does with a model that is not a transformers ``PreTrainedModel`` (ours): it moves it with
``.to``, inspects ``forward``'s signature (``return_loss`` and label arguments, ``**kwargs``), sets
``model.config.use_cache``, reads ``main_input_name`` and ``num_parameters(exclude_embeddings=True)`` (FLOPs),
calls ``train()`` / ``zero_grad()`` / ``parameters()`` / ``named_parameters()``, computes the loss as
``outputs["loss"]`` (a dict output) or ``outputs[0]`` (a tuple), and saves checkpoints from
``state_dict()`` with safetensors. Trainer itself needs ``accelerate``; the parts above that need no
accelerator run here without it (Trainer's own functions, called on a stand-in for the Trainer), and a
real Trainer run where ``accelerate`` is installed.
"""

from __future__ import annotations

import inspect
import math
from types import SimpleNamespace

import pytest
import torch

from model_inputs import valid
from oracle import transformers
from pe_av import PeAudioModel, PeAudioVideoModel, PeVideoModel
from tiny_configs import AUDIO, FUSION, TEXT, VIDEO

T = transformers


KINDS = {  # our class, transformers' class, config arguments, inputs
    "av": (PeAudioVideoModel, "PeAudioVideoModel", dict(text_config=TEXT, audio_video_config=FUSION),
           ("input_ids", "input_values", "pixel_values_videos")),
    "audio": (PeAudioModel, "PeAudioModel", dict(text_config=TEXT, audio_config=AUDIO), ("input_ids", "input_values")),
    "video": (PeVideoModel, "PeVideoModel", dict(text_config=TEXT, video_config=VIDEO), ("input_ids", "pixel_values_videos")),
}
VALID = {"input_ids": "ids", "input_values": "audio", "pixel_values_videos": "video"}


def tiny_model(kind: str = "av", reference: bool = False):
    ours_cls, ref_name, config_args, _ = KINDS[kind]
    torch.manual_seed(0)
    if reference:
        ref_cls = getattr(T, ref_name)
        return ref_cls(ref_cls.config_class(**config_args))
    model = ours_cls(ours_cls.config_class(**config_args))
    with torch.no_grad():  # off the init's saddle (scale 0: every logit 0, the loss flat in the embeddings)
        for name, param in model.named_parameters():
            if name.endswith("logit_scale"):
                param.fill_(2.0)
    return model


def batch(kind: str = "av") -> dict:
    return {**{name: valid(VALID[name]) for name in KINDS[kind][3]}, "return_loss": True}


def trainer_stand_in(model) -> SimpleNamespace:
    """The attributes ``Trainer.compute_loss`` / ``floating_point_ops`` read, for a single CPU process."""
    return SimpleNamespace(model=model, accelerator=None, label_smoother=None, compute_loss_func=None,
                           model_accepts_loss_kwargs=False, args=SimpleNamespace(average_tokens_across_devices=False))


@pytest.mark.oracle
@pytest.mark.parametrize("kind, return_dict", [("av", True), ("audio", False), ("video", False)])
def test_trainer_loss_and_steps(kind, return_dict):
    """Trainer's ``compute_loss`` finds the loss in ``outputs["loss"]`` (return_dict) or ``outputs[0]`` (tuples,
    where the loss comes first); three optimizer steps on it give finite losses and change the weights."""
    model = tiny_model(kind)
    model.config.return_dict = return_dict
    model.train()
    stand_in = trainer_stand_in(model)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    before = {name: p.detach().clone() for name, p in model.named_parameters()}
    losses, trained = [], set()
    for _ in range(3):
        loss = T.Trainer.compute_loss(stand_in, model, batch(kind))
        assert isinstance(loss, torch.Tensor) and loss.dim() == 0 and loss.requires_grad
        loss.backward()
        trained |= {name for name, p in model.named_parameters() if p.grad is not None}
        optimizer.step()
        optimizer.zero_grad()
        losses.append(loss.item())
    assert all(math.isfinite(x) for x in losses) and losses[-1] != losses[0], losses
    assert_trained(model, before, trained)


def assert_trained(model, before: dict, trained: set | None = None) -> None:
    """Every parameter outside the frozen codec (the DAC and its bottleneck run without gradient, as in the
    reference) has moved."""
    changed = {name for name, p in model.named_parameters() if not torch.equal(p.detach().cpu(), before[name])}
    expected = {name for name in before if "dac_encoder" not in name and "embedder.bottleneck" not in name}
    assert changed == expected, sorted(changed ^ expected)[:5]
    assert trained is None or trained == expected


@pytest.mark.oracle
def test_audio_video_model_tuples_put_the_loss_last_as_transformers():
    """``PeAudioVideoOutput`` declares ``loss`` last: with ``return_dict=False`` Trainer's ``outputs[0]`` is
    ``audio_embeds``, for transformers' model as for ours (train it with return_dict=True)."""
    firsts = []
    for model in (tiny_model("av", reference=True), tiny_model("av")):
        model.config.return_dict = False
        with torch.no_grad():
            firsts.append(T.Trainer.compute_loss(trainer_stand_in(model), model, batch("av")))
    assert firsts[0].shape == firsts[1].shape == (2, TEXT["hidden_size"])


@pytest.mark.oracle
def test_what_trainer_reads_from_the_model(tmp_path):
    """Each value Trainer derives from the model equals the one it derives from transformers' model."""
    ours, ref = tiny_model(), tiny_model(reference=True)
    inputs = batch()
    assert T.Trainer.floating_point_ops(trainer_stand_in(ours), inputs) == \
        T.Trainer.floating_point_ops(trainer_stand_in(ref), inputs) > 0
    from transformers.utils.generic import can_return_loss, find_labels

    assert can_return_loss(type(ours)) == can_return_loss(type(ref))
    assert find_labels(type(ours)) == find_labels(type(ref)) == []
    columns = set(inspect.signature(ours.forward).parameters)
    assert set(inputs) <= columns  # the collator's keys survive remove_unused_columns
    assert set(inspect.signature(ref.forward).parameters) - {"kwargs"} <= columns
    ours.config.use_cache = False  # Trainer sets it; the config takes it, and keeps it as transformers' does
    ref.config.use_cache = False
    assert ours.config.use_cache is False
    assert ("use_cache" in ours.config.to_dict()) == ("use_cache" in ref.config.to_dict())
    assert ours.to("cpu") is ours and ours._keys_to_ignore_on_save == set()


class PairedClips(torch.utils.data.Dataset):
    def __init__(self, kind: str):
        self.items = [{key: value[i] for key, value in batch(kind).items() if key != "return_loss"} for i in range(2)]

    def __len__(self):
        return len(self.items)

    def __getitem__(self, index):
        return self.items[index]


def collate(items: list[dict]) -> dict:
    return {**{key: torch.stack([item[key] for item in items]) for key in items[0]}, "return_loss": True}


@pytest.mark.parametrize("kind, return_dict, checkpointing", [("av", True, False), ("audio", False, False),
                                                              ("av", True, True)])
def test_trainer_trains_a_pe_av_model(tmp_path, kind, return_dict, checkpointing):
    """A real ``Trainer`` run, three steps on CPU, reading ``outputs["loss"]`` or ``outputs[0]``. (Checkpoints:
    Trainer saves a model that is not transformers' with safetensors from ``state_dict()``, which refuses the
    shared tensors of ``PeAudioVideoModel``; hence ``save_strategy="no"`` here, and ``model.save_pretrained``.)"""
    pytest.importorskip("accelerate", reason="transformers.Trainer needs accelerate (transformers[torch])")
    model = tiny_model(kind)
    model.config.return_dict = return_dict
    before = {name: p.detach().clone() for name, p in model.named_parameters()}
    args = T.TrainingArguments(
        output_dir=str(tmp_path), max_steps=3, per_device_train_batch_size=2, learning_rate=1e-3,
        logging_steps=1, report_to=[], use_cpu=True, save_strategy="no", disable_tqdm=True,
        dataloader_num_workers=0, activation_checkpointing=checkpointing,
    )
    trainer = T.Trainer(model=model, args=args, train_dataset=PairedClips(kind), data_collator=collate)
    result = trainer.train()
    losses = [entry["loss"] for entry in trainer.state.log_history if "loss" in entry]
    assert len(losses) == 3 and all(math.isfinite(x) for x in losses), trainer.state.log_history
    assert math.isfinite(result.training_loss) and result.global_step == 3
    assert_trained(model, before)
    assert trainer.model is model and model.config.use_cache is False  # Trainer sets args.use_cache (False)
    assert model.is_activation_checkpointing is checkpointing  # Trainer calls activation_checkpointing_enable
