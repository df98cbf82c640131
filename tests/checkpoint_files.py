"""Helpers of the checkpoint-fault tests: the model classes, copy-and-edit, a checkpoint's first key.

The ``saved`` fixture (one tiny checkpoint per class) lives in conftest.py."""

from __future__ import annotations

import json
import os
import shutil

from safetensors.torch import load_file, save_file

from pe_av.loading import SAFE_WEIGHTS_NAME
from tiny_configs import CONFIGS

MODEL_CLASSES = list(CONFIGS)


def copy(src, dst, edit_state=None, edit_config=None):
    """Copy checkpoint ``src`` to ``dst``, editing its tensors and/or config.json on the way."""
    shutil.copytree(src, dst)
    if edit_state is not None:
        path = os.path.join(dst, SAFE_WEIGHTS_NAME)
        state = load_file(path)
        edit_state(state)
        save_file(state, path)
    if edit_config is not None:
        path = os.path.join(dst, "config.json")
        with open(path) as fh:
            config = json.load(fh)
        text = edit_config(config)
        with open(path, "w") as fh:
            fh.write(text if isinstance(text, str) else json.dumps(config))
    return dst


def first_key(directory) -> str:
    return sorted(load_file(os.path.join(directory, SAFE_WEIGHTS_NAME)))[0]
