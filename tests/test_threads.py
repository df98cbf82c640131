"""Objects shared by threads: each call gets what it asked for, whatever the other threads ask.

- ``PeTokenizer``: the ``tokenizers`` backend keeps truncation/padding as mutable state that every call
  sets; threads calling with different ``max_length``/``padding`` must each get their own result.
- a model: each thread picks its backend with ``model.using_attn_impl(...)``; its outputs must equal its
  backend's single-threaded outputs, and the op forms that ran must be its backend's (counted by
  patching the ops' tables). ``set_attn_impl`` (the default of all threads) refuses while a thread
  overrides.

Python switches threads every 5 ms by default; the tests lower the switch interval so that calls
interleave op by op.
"""

from __future__ import annotations

import sys
import threading
from collections import Counter

import pytest
import torch
from tokenizers import Tokenizer, pre_tokenizers, processors
from tokenizers.models import WordLevel

from pe_av import PeAudioEncoder, PeTokenizer
from pe_av.ops import rms_norm as rms_norm_op
from pe_av.ops import rope_attention as rope_attention_op
from tiny_configs import HOP, build

WORDS = "a dog barks the cat sings loud music quiet rain over and under".split()


@pytest.fixture(autouse=True)
def _fast_switching():
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    yield
    sys.setswitchinterval(interval)


def run_threads(workers, *args):
    """Start one thread per worker (``worker(index, barrier, *args)``) together; re-raise their errors."""
    barrier = threading.Barrier(len(workers))
    errors = []

    def wrap(index, worker):
        try:
            worker(index, barrier, *args)
        except BaseException as error:  # noqa: BLE001 - reported in the main thread
            errors.append(error)

    threads = [threading.Thread(target=wrap, args=(i, w)) for i, w in enumerate(workers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        raise errors[0]


# --------------------------------------------------------------------------------------------------
# tokenizer


def backend_tokenizer() -> Tokenizer:
    vocab = {token: i for i, token in enumerate(["[PAD]", "[UNK]", "[CLS]", "[SEP]"] + WORDS)}
    tokenizer = Tokenizer(WordLevel(vocab, unk_token="[UNK]"))
    tokenizer.pre_tokenizer = pre_tokenizers.Whitespace()
    tokenizer.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B [SEP]", special_tokens=[("[CLS]", 2), ("[SEP]", 3)]
    )
    return tokenizer


TEXTS = ["a dog barks", "the cat sings loud music over and under the rain", "rain", "a " * 40 + "dog"]
#: per thread: (max_length, padding, truncation)
SETTINGS = [(4, True, True), (9, "max_length", True), (20, True, True), (30, "max_length", True),
            (6, "longest", True), (None, True, False)]


def test_tokenizer_threads_get_their_own_truncation_and_padding():
    tokenizer = PeTokenizer(backend_tokenizer(), pad_token="[PAD]")
    expected = [tokenizer(TEXTS, padding=p, truncation=t, max_length=m) for m, p, t in SETTINGS]
    assert len({e["input_ids"].shape for e in expected}) == len(SETTINGS)  # every thread's result differs
    calls, mismatches = 150, Counter()

    def worker(index, barrier):
        max_length, padding, truncation = SETTINGS[index]
        barrier.wait()
        for _ in range(calls):
            got = tokenizer(TEXTS, padding=padding, truncation=truncation, max_length=max_length)
            if not all(torch.equal(got[key], expected[index][key]) for key in ("input_ids", "attention_mask")):
                mismatches[index] += 1

    run_threads([worker] * len(SETTINGS))
    assert not mismatches, f"{sum(mismatches.values())} of {calls * len(SETTINGS)} calls got another thread's result"
    # and no setting leaks out of the calls
    assert tokenizer.tokenizer.truncation is None and tokenizer.tokenizer.padding is None


# --------------------------------------------------------------------------------------------------
# a model shared by threads


@pytest.fixture(scope="module")
def encoder():
    model = build(PeAudioEncoder)
    with torch.no_grad():
        for param in model.parameters():  # norm weights off their constant init: eager and sdpa differ more
            if param.dim() == 1:
                param.add_(0.1 * torch.randn_like(param))
    return model.set_attn_impl("sdpa")


def audio_inputs():
    g = torch.Generator().manual_seed(1)
    mask = torch.ones(2, 5 * HOP, dtype=torch.long)
    mask[1, 3 * HOP :] = 0
    return dict(input_values=torch.randn(2, 1, 5 * HOP, generator=g), padding_mask=mask)


def forward(model, inputs):
    with torch.no_grad():
        out = model(**inputs)
    return out.last_hidden_state, out.pooler_output


@pytest.fixture
def counted_forms(monkeypatch):
    """Patch the eager and sdpa forms of RMSNorm and PeAttention to count, per thread, which ran."""
    ran: dict[int, Counter] = {}

    def counting(op, backend):
        form = op.forms[backend]

        def counted(*args, **kwargs):
            ran.setdefault(threading.get_ident(), Counter())[(op.name, backend)] += 1
            return form(*args, **kwargs)

        return counted

    for op in (rms_norm_op, rope_attention_op):
        for backend in ("eager", "sdpa"):
            monkeypatch.setitem(op.forms, backend, counting(op, backend))
    return ran


def test_threads_each_run_the_backend_they_chose(encoder, counted_forms):
    inputs = audio_inputs()
    backends = ("eager", "sdpa", "eager", "sdpa")
    expected = {}
    for backend in set(backends):
        with encoder.using_attn_impl(backend):
            assert encoder.attn_impl == backend
            expected[backend] = forward(encoder, inputs)
    assert encoder.attn_impl == "sdpa"  # the default again
    assert not torch.equal(expected["eager"][0], expected["sdpa"][0])  # the check below can tell them apart
    counted_forms.clear()
    rounds, calls, mismatches, idents = 20, Counter(), Counter(), {}

    def worker(index, barrier):
        backend = backends[index]
        idents[index] = threading.get_ident()
        barrier.wait()
        for round_ in range(rounds):
            with encoder.using_attn_impl(backend):  # one call per block, or two
                outs = [forward(encoder, inputs) for _ in range(1 + round_ % 2)]
            for got in outs:
                calls[index] += 1
                mismatches[index] += not all(torch.equal(g, e) for g, e in zip(got, expected[backend]))

    run_threads([worker] * len(backends))
    assert sum(calls.values()) == 30 * len(backends)
    assert not +mismatches, f"{sum(mismatches.values())} of {sum(calls.values())} calls mixed backends"
    for index, backend in enumerate(backends):
        ran = counted_forms[idents[index]]
        assert ran, "the forms were not counted"
        assert {b for _, b in ran} == {backend}, (backend, ran)
        assert {name for name, _ in ran} == {rms_norm_op.name, rope_attention_op.name}


def test_threads_without_an_override_run_the_default(encoder, counted_forms):
    inputs = audio_inputs()
    expected = forward(encoder, inputs)  # the default, sdpa
    with encoder.using_attn_impl("eager"):
        eager = forward(encoder, inputs)
    counted_forms.clear()
    results, idents = {}, {}

    def overriding(index, barrier):
        idents[index] = threading.get_ident()
        with encoder.using_attn_impl("eager"):
            barrier.wait()
            results[index] = [forward(encoder, inputs) for _ in range(10)]

    def default(index, barrier):
        idents[index] = threading.get_ident()
        barrier.wait()
        results[index] = [forward(encoder, inputs) for _ in range(10)]

    run_threads([overriding, default])
    for index, reference in ((0, eager), (1, expected)):
        assert all(torch.equal(got[0], reference[0]) for got in results[index])
    assert {b for _, b in counted_forms[idents[0]]} == {"eager"}
    assert {b for _, b in counted_forms[idents[1]]} == {"sdpa"}


def test_overrides_nest_and_are_not_inherited_by_new_threads(encoder):
    seen = {}
    with encoder.using_attn_impl("eager"):
        with encoder.using_attn_impl("triton"):
            assert encoder.attn_impl == "triton"
        assert encoder.attn_impl == "eager"
        thread = threading.Thread(target=lambda: seen.setdefault("child", encoder.attn_impl))
        thread.start()
        thread.join()
    assert seen["child"] == "sdpa" and encoder.attn_impl == "sdpa"
    with pytest.raises(ValueError, match="attn_impl must be one of"):
        with encoder.using_attn_impl("flash"):
            pass


def test_set_attn_impl_refuses_while_a_thread_overrides(encoder):
    entered, release = threading.Event(), threading.Event()

    def hold():
        with encoder.using_attn_impl("eager"):
            entered.set()
            release.wait(10)

    thread = threading.Thread(target=hold)
    thread.start()
    try:
        assert entered.wait(10)
        with pytest.raises(RuntimeError, match="while a thread overrides it"):
            encoder.set_attn_impl("eager")
        assert encoder.attn_impl == "sdpa"  # nothing changed, not even partly
        assert all(m.backend == "sdpa" for m in encoder.modules() if hasattr(m, "set_backend"))
    finally:
        release.set()
        thread.join()
    assert encoder.set_attn_impl("eager").attn_impl == "eager"  # free again once the override ended
    encoder.set_attn_impl("sdpa")
