"""Test configuration.

- Without CUDA, ``TRITON_INTERPRET=1`` is set before anything imports triton, so kernel tests run
  on CPU through Triton's interpreter.
- Oracle tests (marker ``oracle``) compare against transformers/timm. When ``PE_AV_REQUIRE_ORACLE=1``
  (set by ``.ci/run``) a skipped oracle test fails the session: CI must never pass by skipping them.
"""

import os

import torch  # importing torch does not import triton

if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")
    # tests use tiny shapes: thread start-up dominates them, and costs up to 100x on a busy 2-core machine
    torch.set_num_threads(1)

import pytest  # noqa: E402

_skipped_oracle: list[str] = []


def pytest_runtest_logreport(report):
    if report.skipped and "oracle" in report.keywords:
        _skipped_oracle.append(report.nodeid)


def pytest_sessionfinish(session, exitstatus):
    if _skipped_oracle and os.environ.get("PE_AV_REQUIRE_ORACLE") == "1":
        print(f"\nERROR: {len(_skipped_oracle)} oracle test(s) were skipped; CI requires them to run:")
        for nodeid in _skipped_oracle:
            print(f"  {nodeid}")
        session.exitstatus = 1


@pytest.fixture(autouse=True)
def _deterministic():
    torch.manual_seed(0)
    yield


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    """One saved tiny checkpoint per model class (single file), plus a sharded PeAudioEncoder."""
    from pe_av import PeAudioEncoder
    from tiny_configs import CONFIGS, build

    root = tmp_path_factory.mktemp("checkpoints")
    directories = {}
    for cls in CONFIGS:
        directories[cls] = root / cls.__name__
        build(cls).save_pretrained(directories[cls])
    directories["sharded"] = root / "sharded"
    build(PeAudioEncoder).save_pretrained(directories["sharded"], max_shard_size="4KB")
    return directories
