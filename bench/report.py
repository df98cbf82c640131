"""Turn pytest-benchmark JSONs (``--benchmark-json``) of the bench suite into one markdown report.

    python bench/report.py bench/results/gpu-h200-2026-12-02-ops.json [more.json ...] [-o report.md]

The report gives, per benchmark group (one op or model path), each backend's time and its speedup
against ``hf`` (transformers on the same weights): ``hf time / backend time``, so 2.0× means twice as
fast as transformers (groups without an ``hf`` row, pe-av's forms only, take ``sdpa`` as the
baseline). A summary table lists every group's speedups side by side. Op groups also give
each backend's fraction of the op's roofline bound (from the peaks measured at the start of the run)
and, on CUDA, its CUDA-graph time. Several JSONs (e.g. the op and the model runs of
``bench/gpu_check.sh``) are merged; the header describes the first one's machine, and each other's
peaks and clocks.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import defaultdict
from pathlib import Path
from typing import Any

BACKEND_ORDER = ("hf", "eager", "sdpa", "triton", "compile")
OP_TIMERS = {
    "do_bench": "triton.testing.do_bench (L2 flushed, CUDA events), CUDA-graph time beside it",
    "wall": "wall clock per call",
    "emulated": "do_bench's loop with a wall clock (CPU stand-in)",
}
THROUGHPUT_KEYS = (
    ("tokens_per_s", "tokens/s"),
    ("clips_per_s", "clips/s"),
    ("achieved_GBps", "GB/s"),
    ("achieved_TFLOPs", "TFLOP/s"),
    ("fraction_of_h100_sxm_peak", "of H100 SXM peak"),  # results written before the peaks were measured
)


def _time(seconds: float) -> str:
    if seconds >= 1.0:
        return f"{seconds:.3f} s"
    if seconds >= 1e-3:
        return f"{seconds * 1e3:.2f} ms"
    return f"{seconds * 1e6:.1f} µs"


def _speedup(reference: float | None, value: float) -> str:
    return "—" if reference is None else f"{reference / value:.2f}×"


def _backend(bench: dict[str, Any]) -> str:
    return bench.get("params", {}).get("backend") or bench.get("extra_info", {}).get("backend", "?")


def _group_sort_key(group: str) -> tuple[int, str]:
    return (0 if group.startswith("model:") else 1, group)


def _throughput(info: dict[str, Any]) -> str:
    parts = []
    for key, label in THROUGHPUT_KEYS:
        if key in info:
            value = info[key]
            if key.startswith("fraction"):
                parts.append(f"{value:.1%} {label}")
            else:
                parts.append(f"{value:,.0f} {label}" if value >= 100 else f"{value:.3g} {label}")
    if "peak_memory_GiB" in info:
        gib = info["peak_memory_GiB"]
        parts.append(f"peak memory above the weights {gib:.2f} GiB" if gib >= 1 else f"peak memory above the weights {gib * 1024:.0f} MiB")
    return ", ".join(parts)


def _roofline(info: dict[str, Any]) -> str:
    if "fraction_of_roofline" not in info:
        return "—"
    return f"{info['fraction_of_roofline']:.1%} of {info['roofline_bound_us']:.1f} µs ({info['bound_by']})"


def _cudagraph(info: dict[str, Any]) -> str:
    graph = info.get("cudagraph")
    if not graph:
        return "—"
    if "error" in graph:
        return "not capturable"
    roof = f", {graph['fraction_of_roofline']:.1%} of roofline" if "fraction_of_roofline" in graph else ""
    return f"{graph['median_us']:.1f} µs{roof}"


def _groups(benchmarks: list[dict[str, Any]]) -> dict[str, dict[str, dict[str, Any]]]:
    groups: dict[str, dict[str, dict[str, Any]]] = defaultdict(dict)
    for bench in benchmarks:
        groups[bench.get("group") or bench["name"]][_backend(bench)] = bench
    return groups


def baseline(per_backend: dict[str, dict[str, Any]]) -> tuple[str | None, float | None, float | None]:
    """The row a group's speedups are taken against: ``hf`` where the group has one, else ``sdpa`` (the
    groups of pe-av's forms only: PyTorch's fused ops, the baseline of the Triton kernels)."""
    for name in ("hf", "sdpa"):
        bench = per_backend.get(name)
        if bench is not None:
            return name, bench["stats"]["median"], bench["stats"]["min"]
    return None, None, None


def summary_table(benchmarks: list[dict[str, Any]]) -> list[str]:
    """Markdown rows: one per group, the speedup of each backend against its baseline (median [min])."""
    groups = _groups(benchmarks)
    present = [b for b in BACKEND_ORDER if any(b in per_backend for per_backend in groups.values())]
    others = [b for b in BACKEND_ORDER if b != "hf" and b in present]
    lines = ["| group | baseline median | " + " | ".join(others) + " |", "|---|---:|" + "---:|" * len(others)]
    for group in sorted(groups, key=_group_sort_key):
        per_backend = groups[group]
        name, ref_median, ref_min = baseline(per_backend)
        cells = []
        for backend in others:
            bench = per_backend.get(backend)
            if bench is None:
                cells.append("—")
            else:
                stats = bench["stats"]
                cells.append(f"{_speedup(ref_median, stats['median'])} [{_speedup(ref_min, stats['min'])}]")
        ref = f"{_time(ref_median)} ({name})" if ref_median else "—"
        lines.append(f"| {group} | {ref} | " + " | ".join(cells) + " |")
    return lines


def _peaks_line(peaks: dict[str, Any]) -> str:
    if not peaks:
        return "- peaks: not measured (results from before the suite measured them)"
    if "copy_GBps" not in peaks:
        return f"- peaks: measurement failed ({peaks.get('error', '?')}); no roofline fractions"
    gemm = ", ".join(f"{dtype} {rate:.4g}" for dtype, rate in peaks.get("gemm_TFLOPs", {}).items())
    return (
        f"- peaks measured at the start of the run ({peaks.get('timer', '?')}): copy {peaks['copy_GBps']:,.0f} GB/s "
        f"({peaks['copy_bytes'] / 2**20:,.0f} MiB read + written); GEMM {peaks['gemm_n']}³ TFLOP/s: {gemm}; "
        f"ridge {peaks.get('ridge_flops_per_byte', '?')} FLOP/byte"
    )


def _clocks_line(clocks: dict[str, Any]) -> list[str]:
    lines: list[str] = []
    reasons = {value.get("reason") for value in (clocks or {}).values() if isinstance(value, dict)}
    if len(reasons) == 1 and None not in reasons:  # e.g. a CPU run: no clocks at any moment, for one reason
        return [f"- clocks: {reasons.pop()}"]
    for when, value in (clocks or {}).items():
        if not isinstance(value, dict):
            continue
        gpus = value.get("gpus")
        if gpus:
            shown = "; ".join(", ".join(f"{k} {v}" for k, v in gpu.items()) for gpu in gpus)
            lines.append(f"- clocks ({when}, {value.get('source')}): {shown}")
        elif value.get("reason"):
            lines.append(f"- clocks ({when}): {value['reason']}")
    return lines


def _header(data: dict[str, Any], extra: list[dict[str, Any]]) -> list[str]:
    machine = data.get("machine_info", {})
    bench_info = machine.get("pe_av_bench", {})
    versions = bench_info.get("versions", {})
    preset = bench_info.get("preset", {})
    date = str(data.get("datetime", ""))[:10]
    device = bench_info.get("device", "?")
    device_name = bench_info.get("device_name") or machine.get("cpu", {}).get("brand_raw") or "?"
    cpu = machine.get("cpu", {})
    lines = [
        f"# pe-av benchmarks: {device} ({device_name}), {date}",
        "",
        f"- device: {device} — {device_name}"
        + (f"; host CPU: {cpu.get('brand_raw')}, {cpu.get('count')} logical cores" if cpu.get("brand_raw") else "")
        + (f"; torch threads: {bench_info['torch_threads']}" if bench_info.get("torch_threads") else "")
        + (f"; CUDA {bench_info['cuda']}" if bench_info.get("cuda") else ""),
        f"- dtype: {bench_info.get('dtype', '?')}; preset: {preset.get('name', '?')} (PE size {preset.get('size', '?')}, "
        f"{preset.get('pe_layers', '?')} layers per PE encoder, batch {preset.get('batch', '?')}, "
        f"{preset.get('audio_tokens', '?')} audio tokens per clip, {preset.get('frames', '?')} frames at "
        f"{preset.get('image_size', '?')} px, ViT depth {preset.get('vit_depth', '?')}, text "
        f"{preset.get('text_layers', '?')} layers × {preset.get('text_len', '?')} tokens)",
        "- versions: " + ", ".join(f"{name} {version}" for name, version in versions.items() if version),
        f"- python {machine.get('python_version', '?')}",
        "- speedup = baseline time / backend time, the baseline being hf where a group has it, else sdpa "
        "(higher is better; hf = transformers, attn_implementation='sdpa', "
        "same weights). Times are medians; the min-based speedup is in brackets.",
    ]
    if bench_info.get("op_timer"):
        lines.append(
            f"- op timer: {OP_TIMERS.get(bench_info['op_timer'], bench_info['op_timer'])}; model paths: wall clock over "
            "whole calls after warm-up"
            + (", synchronized" if device == "cuda" else "")
        )
    for index, other in enumerate([data, *extra]):
        info = other.get("machine_info", {}).get("pe_av_bench", {})
        tag = "" if index == 0 else f" [file {index + 1}]"
        if "peaks" in info or index == 0:
            lines.append(_peaks_line(info.get("peaks", {})).replace("- peaks", f"- peaks{tag}", 1))
        lines += [line.replace("- clocks", f"- clocks{tag}", 1) for line in _clocks_line(info.get("clocks", {}))]
    allocator = bench_info.get("allocator_env")
    if allocator is not None:
        lines.append(
            "- allocator/threads environment: "
            + (", ".join(f"`{key}={value}`" for key, value in sorted(allocator.items())) or "defaults (none set)")
        )
    skipped = {}
    for other in [data, *extra]:
        skipped.update({k: v for k, v in (other.get("machine_info", {}).get("pe_av_bench", {}).get("skip_reasons") or {}).items() if v})
    for backend, reason in skipped.items():
        lines.append(f"- `{backend}` not run: {reason}")
    return lines


def render(data: dict[str, Any], extra: list[dict[str, Any]] | None = None) -> str:
    extra = extra or []
    benchmarks = [bench for one in [data, *extra] for bench in one.get("benchmarks", [])]
    groups = _groups(benchmarks)
    lines = _header(data, extra)
    lines += ["", "## Summary: speedup against hf, or against sdpa in groups without hf (median [min])", ""]
    lines += summary_table(benchmarks)

    lines += ["", "## Details", ""]
    for group in sorted(groups, key=_group_sort_key):
        per_backend = groups[group]
        reference, hf_median, hf_min = baseline(per_backend)
        any_info = next(iter(per_backend.values())).get("extra_info", {})
        shapes = f"shapes: `{json.dumps(any_info.get('shapes', {}))}`"
        if "bytes" in any_info:
            flops = any_info.get("flops")
            shapes += (
                f"; minimal work per call: {any_info['bytes'] / 1e6:,.2f} MB"
                + (f", {flops / 1e9:,.3f} GFLOP" if flops else "")
                + (f" (intensity {any_info['arithmetic_intensity']} FLOP/byte)" if "arithmetic_intensity" in any_info else "")
            )
        lines += [f"### {group}", "", shapes, ""]
        is_op = any("bytes" in bench.get("extra_info", {}) for bench in per_backend.values())
        columns = f"| backend | median | min | rounds | speedup vs {reference} (median) | (min) |"
        rule = "|---|---:|---:|---:|---:|---:|"
        if is_op:
            columns += " of roofline (median) | CUDA graph (median) |"
            rule += "---:|---:|"
        lines += [columns + " throughput (median) |", rule + "---|"]
        for backend in [b for b in BACKEND_ORDER if b in per_backend] + sorted(set(per_backend) - set(BACKEND_ORDER)):
            bench = per_backend[backend]
            stats, info = bench["stats"], bench.get("extra_info", {})
            row = (
                f"| {backend} | {_time(stats['median'])} | {_time(stats['min'])} | {stats['rounds']} | "
                f"{_speedup(hf_median, stats['median'])} | {_speedup(hf_min, stats['min'])} | "
            )
            if is_op:
                row += f"{_roofline(info)} | {_cudagraph(info)} | "
            lines.append(row + f"{_throughput(info)} |")
        lines.append("")
    return "\n".join(lines)


def render_memory(rows: list[dict[str, Any]]) -> str:
    """The fresh-process memory rows (one per case and library) as a table: transformers vs pe-av per case."""
    by_case: dict[str, dict[str, float]] = defaultdict(dict)
    for row in rows:
        by_case[row["case"]][row["library"]] = row["extra_peak_mb"]
    lines = [
        "## Extra peak memory of one forward, fresh process per case (`bench/cpu_choices.py memory`)",
        "",
        (
            "Peak resident set above the one before the call, after a warm-up call on a short input, glibc's mmap "
            "threshold pinned at 64 KiB (freed activations leave the resident set); batch 1, fp32, sdpa."
        ),
        "",
        "| case | transformers | pe-av | pe-av / transformers |",
        "|---|---:|---:|---:|",
    ]
    for case, found in by_case.items():
        hf, ours = found.get("hf"), found.get("ours")
        ratio = f"{ours / hf:.2f}" if hf and ours is not None else "—"
        cells = [f"{v:.0f} MB" if v is not None else "—" for v in (hf, ours)]
        lines.append(f"| {case} | {cells[0]} | {cells[1]} | {ratio} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("json", type=Path, nargs="+", help="files written by pytest --benchmark-json")
    parser.add_argument("-o", "--output", type=Path, help="write the markdown here (default: stdout)")
    parser.add_argument("--memory", type=Path, help="JSON lines of `bench/cpu_choices.py memory`: appended as a table")
    args = parser.parse_args(argv)
    data = [json.loads(path.read_text(encoding="utf-8")) for path in args.json]
    text = render(data[0], data[1:])
    if args.memory:
        text += "\n\n" + render_memory([json.loads(line) for line in args.memory.read_text(encoding="utf-8").splitlines() if line.strip()])
    if args.output:  # temp file, fsync, rename: a reader never sees half a report
        sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
        from pe_av.atomic import atomic_write_bytes

        atomic_write_bytes(args.output, (text + "\n").encode("utf-8"))
    else:
        sys.stdout.write(text + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
