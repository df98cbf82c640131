"""pytest plugin of ``bench/gpu_check.sh --smoke``: collect everything, run only the first selected test.

    python -m pytest -p first_test_only -m kernels tests/test_kernels_*.py ...   (bench/ on PYTHONPATH)

Every file is still imported and collected (parametrization and marks are checked) and the JUnit XML
is written; the smoke run checks the script's plumbing, while CI's own test run covers the kernels.
"""

from __future__ import annotations

import pytest


@pytest.hookimpl(trylast=True)  # after -m / -k have deselected theirs
def pytest_collection_modifyitems(session, config, items):
    if len(items) > 1:
        config.hook.pytest_deselected(items=items[1:])
        del items[1:]
