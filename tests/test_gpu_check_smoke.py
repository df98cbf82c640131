"""``bench/gpu_check.sh A|B OUT --smoke``: the GPU check's two commands on CPU at tiny shapes, so that
the script cannot rot between the (rare) runs on a GPU machine. Both parts run at once (about 40 s
together on two idle cores); what they write is checked as the GPU run's results will be read."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "bench" / "gpu_check.sh"

pytestmark = [
    pytest.mark.gpu_check,
    pytest.mark.skipif(shutil.which("bash") is None or shutil.which("timeout") is None, reason="needs bash and timeout"),
]


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("gpu-check")
    env = dict(os.environ, PE_AV_PYTHON=sys.executable, PE_AV_WHEELS=str(out / "no-wheels"))
    started = time.monotonic()
    runs = {
        part: subprocess.Popen(
            ["bash", str(SCRIPT), part, str(out), "--smoke"], cwd=ROOT, env=env,
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        )
        for part in ("A", "B")
    }
    results = {}
    for part, process in runs.items():
        try:
            stdout, _ = process.communicate(timeout=300)
        except subprocess.TimeoutExpired:
            process.kill()
            stdout, _ = process.communicate()
        results[part] = (process.returncode, stdout)
    return out, results, time.monotonic() - started


def _log(out: Path, part: str) -> str:
    path = out / f"{part}-log.txt"
    return path.read_text(encoding="utf-8")[-6000:] if path.exists() else "(no log)"


@pytest.mark.parametrize("part", ["A", "B"])
def test_every_step_passes(smoke_run, part):
    out, results, _ = smoke_run
    status, stdout = results[part]
    assert status == 0, stdout + _log(out, part)
    steps = [line.split("\t") for line in (out / f"{part}-steps.tsv").read_text().splitlines()[1:]]
    expected = ["setup", "preflight", *(("kernels", "ops") if part == "A" else ("models",)), "report"]
    assert [row[0] for row in steps] == expected and all(row[1] == "0" for row in steps), steps


@pytest.mark.parametrize("part", ["A", "B"])
def test_device_info_and_import_checks(smoke_run, part):
    out, _, _ = smoke_run
    info = json.loads((out / f"{part}-device.json").read_text())
    assert info["versions"]["python"] and info["versions"]["torch"]
    assert info["clocks"]["source"] in (None, "torch.cuda") or info["clocks"]["gpus"]
    assert info["imports"]["torch"] == info["imports"]["pytest"] == "ok"
    assert info["imports"]["pe_av_without_av_tokenizers_tqdm"] == "ok"


def test_kernel_tests_write_junit(smoke_run):
    out, _, _ = smoke_run
    suite = ET.parse(out / "A-junit-kernels.xml").getroot()
    suite = suite if suite.tag == "testsuite" else suite.find("testsuite")
    assert int(suite.get("tests")) >= 1 and int(suite.get("failures")) == 0 and int(suite.get("errors")) == 0


def _bench(out: Path, name: str) -> dict:
    return json.loads((out / name).read_text())


def test_op_bench_records_do_bench_samples_and_roofline(smoke_run):
    out, _, _ = smoke_run
    data = _bench(out, "A-bench-ops.json")
    run = data["machine_info"]["pe_av_bench"]
    assert run["peaks"]["copy_GBps"] > 0 and run["peaks"]["gemm_TFLOPs"]["float32"] > 0
    assert set(run["clocks"]) == {"clocks_start", "clocks_after_peaks", "end"}
    groups = {bench["group"].split(" ")[0] for bench in data["benchmarks"]}
    assert groups == {
        "op:rms_norm", "op:rms_norm_residual", "op:swiglu", "op:rope", "op:attention", "op:attention_train",
        "op:layer_norm", "op:layer_norm_residual", "op:linear_gelu", "op:geglu", "op:snake", "op:vit_attention",
        "op:text_attention",
    }
    for bench in data["benchmarks"]:
        info = bench["extra_info"]
        assert info["timer"].startswith("emulated do_bench"), info
        assert info["bytes"] > 0 and info["flops"] > 0 and info["fraction_of_roofline"] > 0, info
        assert info["bound_by"] in ("memory", "compute")
    backends = {bench["params"]["backend"] for bench in data["benchmarks"]}
    # part A times no torch.compile rows (they would not fit its five minutes; PE_AV_BENCH_COMPILE=1 adds them)
    assert {"eager", "sdpa", "hf"} <= backends and "compile" not in backends
    snake_layouts = {b["extra_info"]["shapes"]["layout"] for b in data["benchmarks"] if b["group"].startswith("op:snake")}
    assert snake_layouts == {"channels_first", "channels_last"}
    partial = (out / "A-bench-ops.partial.jsonl").read_text().splitlines()
    assert len(partial) == len(data["benchmarks"]) and "median_s" in json.loads(partial[0])
    report = (out / "A-bench-ops.md").read_text()
    assert "of roofline" in report and "peaks measured at the start of the run" in report


def test_model_bench_compiles_only_the_audio_encoder(smoke_run):
    out, _, _ = smoke_run
    data = _bench(out, "B-bench-models.json")
    rows = {(bench["group"], bench["params"]["backend"]) for bench in data["benchmarks"]}
    paths = {"audio_encoder", "video_encoder", "text_tower", "fusion_encoder", "full_model"}
    for backend in ("eager", "sdpa"):
        assert {(f"model:{path}", backend) for path in paths} <= rows
    assert {group for group, backend in rows if backend == "compile"} == {"model:audio_encoder"}
    training = {backend for group, backend in rows if group.startswith("model:pe_training_step")}
    assert {"eager", "sdpa"} <= training
    if data["machine_info"]["pe_av_bench"]["skip_reasons"]["hf"] is None:
        assert ("model:full_model", "hf") in rows or "timm" in _log(out, "B")
    assert all(bench["extra_info"]["timer"].startswith("wall clock") for bench in data["benchmarks"])
    assert "model:audio_encoder" in (out / "B-bench-models.md").read_text()


def test_carried_wheels_skip_a_torchvision_for_another_torch(tmp_path):
    sys.path.insert(0, str(ROOT / "bench"))
    try:
        import carried_wheels
    finally:
        sys.path.remove(str(ROOT / "bench"))
    problem = carried_wheels.torch_pin_problem
    assert problem("torchvision", "0.29.1", ["torch==2.14.1", "numpy"], "2.14.1+cu130") is None
    assert "needs torch 2.9.1" in problem("torchvision", "0.24.1", ["torch==2.9.1"], "2.14.1")
    assert problem("torchvision", "0.29.1", ["torch (>=2.14.0)"], "2.14.0") is None
    assert "needs torch 2.13.*" in problem("torchvision", "0.28.0", ["torch (>=2.13.0)"], "2.14.1")
    assert problem("timm", "1.0.31", ["torch>=2.4", "torch==1.0; extra == 'x'"], "2.14.1") is None
    wheels, site = tmp_path / "wheels", tmp_path / "site"
    wheels.mkdir()
    for name, requires in (("fine", "numpy"), ("vision", "torch==0.0.1")):
        with zipfile.ZipFile(wheels / f"{name}-1.0-py3-none-any.whl", "w") as archive:
            archive.writestr(f"{name}/__init__.py", "VALUE = 1\n")
            archive.writestr(f"{name}-1.0.dist-info/METADATA", f"Name: {name}\nVersion: 1.0\nRequires-Dist: {requires}\n")
            archive.writestr(f"{name}-1.0.data/purelib/{name}_extra.py", "")
    assert carried_wheels.main([str(wheels), str(site)]) == 0
    assert (site / "fine" / "__init__.py").exists() and (site / "fine_extra.py").exists()
    assert not (site / "vision").exists()
