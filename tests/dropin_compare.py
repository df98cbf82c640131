"""Helpers of the drop-in tests: run one call through transformers and pe_av, compare what comes back.

"The same" means: the same class name (``BatchFeature`` / ``BatchEncoding``), the same keys in the same
order, and for every value the same Python type, and — for tensors and arrays — the same dtype, shape and
values, exactly (lists and tuples element by element). Keys that pe_av adds deliberately (e.g.
``padding_mask_videos`` where transformers leaves it out) are named by the caller and checked separately.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch


def assert_same_value(ours, theirs, where: str = "value") -> None:
    if isinstance(theirs, torch.Tensor):
        assert isinstance(ours, torch.Tensor), f"{where}: {type(ours).__name__}, expected a tensor"
        assert ours.dtype == theirs.dtype, f"{where}: dtype {ours.dtype} vs {theirs.dtype}"
        assert ours.shape == theirs.shape, f"{where}: shape {tuple(ours.shape)} vs {tuple(theirs.shape)}"
        assert ours.device == theirs.device, f"{where}: device {ours.device} vs {theirs.device}"
        if theirs.device.type != "meta":  # meta tensors have no values
            assert torch.equal(ours, theirs), f"{where}: values differ"
    elif isinstance(theirs, np.ndarray):
        assert isinstance(ours, np.ndarray), f"{where}: {type(ours).__name__}, expected an ndarray"
        assert ours.dtype == theirs.dtype, f"{where}: dtype {ours.dtype} vs {theirs.dtype}"
        assert ours.shape == theirs.shape, f"{where}: shape {ours.shape} vs {theirs.shape}"
        if theirs.dtype == object:
            for i, (a, b) in enumerate(zip(ours.flat, theirs.flat)):
                assert_same_value(a, b, f"{where}[{i}]")
        else:
            assert np.array_equal(ours, theirs), f"{where}: values differ"
    elif isinstance(theirs, (list, tuple)):
        assert type(ours) is type(theirs), f"{where}: {type(ours).__name__} vs {type(theirs).__name__}"
        assert len(ours) == len(theirs), f"{where}: length {len(ours)} vs {len(theirs)}"
        for i, (a, b) in enumerate(zip(ours, theirs)):
            assert_same_value(a, b, f"{where}[{i}]")
    else:
        assert type(ours) is type(theirs), f"{where}: {type(ours).__name__} vs {type(theirs).__name__}"
        assert ours == theirs, f"{where}: {ours!r} vs {theirs!r}"


def assert_same_batch(ours, theirs, extra: tuple[str, ...] = ()) -> None:
    """Same class name, keys (in order) and values; ``extra`` keys may be ours alone."""
    assert type(ours).__name__ == type(theirs).__name__, f"{type(ours).__name__} vs {type(theirs).__name__}"
    assert [key for key in ours if key not in extra or key in theirs] == list(theirs.keys())
    for key in theirs:
        assert_same_value(ours[key], theirs[key], key)


def both(call_ours, call_theirs):
    """Run both calls: ``(ours, theirs)``, or, when transformers raises, check that ours raises the same type."""
    try:
        theirs = call_theirs()
    except Exception as exc:  # noqa: BLE001 - the reference's error type is what is compared
        with pytest.raises(type(exc)):
            call_ours()
        return None, None
    return call_ours(), theirs
