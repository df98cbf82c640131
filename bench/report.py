"""Turn a pytest-benchmark JSON (``--benchmark-json``) of the bench suite into a markdown report.

    python bench/report.py bench/results/cpu-2026-11-25.json [-o bench/results/cpu-2026-11-25.md]

The report gives, per benchmark group (one op or model path), each backend's time and its speedup
against ``hf`` (transformers on the same weights): ``hf time / backend time``, so 2.0× means twice as
fast as transformers. A summary table lists every group's speedups side by side.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import defaultdict
from pathlib import Path
from typing import Any

BACKEND_ORDER = ("hf", "eager", "sdpa", "triton", "compile")
THROUGHPUT_KEYS = (
    ("tokens_per_s", "tokens/s"),
    ("clips_per_s", "clips/s"),
    ("achieved_GBps", "GB/s"),
    ("achieved_TFLOPs", "TFLOP/s"),
    ("fraction_of_h100_sxm_peak", "of H100 SXM peak"),
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
    return ", ".join(parts)


def _groups(benchmarks: list[dict[str, Any]]) -> dict[str, dict[str, dict[str, Any]]]:
    groups: dict[str, dict[str, dict[str, Any]]] = defaultdict(dict)
    for bench in benchmarks:
        groups[bench.get("group") or bench["name"]][_backend(bench)] = bench
    return groups


def summary_table(benchmarks: list[dict[str, Any]]) -> list[str]:
    """Markdown rows: one per group, the speedup of each backend against ``hf`` (median [min])."""
    groups = _groups(benchmarks)
    present = [b for b in BACKEND_ORDER if any(b in per_backend for per_backend in groups.values())]
    others = [b for b in BACKEND_ORDER if b != "hf" and b in present]
    lines = ["| group | hf median | " + " | ".join(others) + " |", "|---|---:|" + "---:|" * len(others)]
    for group in sorted(groups, key=_group_sort_key):
        per_backend = groups[group]
        hf = per_backend.get("hf")
        hf_median = hf["stats"]["median"] if hf else None
        hf_min = hf["stats"]["min"] if hf else None
        cells = []
        for backend in others:
            bench = per_backend.get(backend)
            if bench is None:
                cells.append("—")
            else:
                stats = bench["stats"]
                cells.append(f"{_speedup(hf_median, stats['median'])} [{_speedup(hf_min, stats['min'])}]")
        lines.append(f"| {group} | {_time(hf_median) if hf_median else '—'} | " + " | ".join(cells) + " |")
    return lines


def render(data: dict[str, Any]) -> str:
    machine = data.get("machine_info", {})
    bench_info = machine.get("pe_av_bench", {})
    versions = bench_info.get("versions", {})
    preset = bench_info.get("preset", {})
    date = str(data.get("datetime", ""))[:10]
    device = bench_info.get("device", "?")
    device_name = bench_info.get("device_name") or machine.get("cpu", {}).get("brand_raw") or "?"
    cpu = machine.get("cpu", {})

    groups = _groups(data.get("benchmarks", []))
    lines = [
        f"# pe-av benchmarks: {device} ({device_name}), {date}",
        "",
        f"- device: {device} — {device_name}"
        + (f"; host CPU: {cpu.get('brand_raw')}, {cpu.get('count')} logical cores" if cpu.get("brand_raw") else "")
        + (f"; torch threads: {bench_info['torch_threads']}" if bench_info.get("torch_threads") else ""),
        f"- dtype: {bench_info.get('dtype', '?')}; preset: {preset.get('name', '?')} (PE size {preset.get('size', '?')}, "
        f"{preset.get('pe_layers', '?')} layers per PE encoder, batch {preset.get('batch', '?')}, "
        f"{preset.get('audio_tokens', '?')} audio tokens per clip, {preset.get('frames', '?')} frames at "
        f"{preset.get('image_size', '?')} px, ViT depth {preset.get('vit_depth', '?')}, text "
        f"{preset.get('text_layers', '?')} layers × {preset.get('text_len', '?')} tokens)",
        "- versions: " + ", ".join(f"{name} {version}" for name, version in versions.items() if version),
        f"- python {machine.get('python_version', '?')}",
        "- speedup = hf time / backend time (higher is better; hf = transformers, attn_implementation='sdpa', "
        "same weights). Times are medians over the rounds; the min-based speedup is in brackets.",
    ]
    allocator = bench_info.get("allocator_env")
    if allocator is not None:
        lines.append(
            "- allocator/threads environment: "
            + (", ".join(f"`{key}={value}`" for key, value in sorted(allocator.items())) or "defaults (none set)")
        )
    skipped = bench_info.get("skip_reasons") or {}
    for backend, reason in skipped.items():
        if reason:
            lines.append(f"- `{backend}` not run: {reason}")
    lines += ["", "## Summary: speedup against hf (median [min])", ""]
    lines += summary_table(data.get("benchmarks", []))

    lines += ["", "## Details", ""]
    for group in sorted(groups, key=_group_sort_key):
        per_backend = groups[group]
        hf = per_backend.get("hf")
        hf_median = hf["stats"]["median"] if hf else None
        hf_min = hf["stats"]["min"] if hf else None
        any_info = next(iter(per_backend.values())).get("extra_info", {})
        lines += [f"### {group}", "", f"shapes: `{json.dumps(any_info.get('shapes', {}))}`", ""]
        lines.append("| backend | median | min | rounds | speedup vs hf (median) | (min) | throughput (median) |")
        lines.append("|---|---:|---:|---:|---:|---:|---|")
        for backend in [b for b in BACKEND_ORDER if b in per_backend] + sorted(set(per_backend) - set(BACKEND_ORDER)):
            bench = per_backend[backend]
            stats = bench["stats"]
            lines.append(
                f"| {backend} | {_time(stats['median'])} | {_time(stats['min'])} | {stats['rounds']} | "
                f"{_speedup(hf_median, stats['median'])} | {_speedup(hf_min, stats['min'])} | "
                f"{_throughput(bench.get('extra_info', {}))} |"
            )
        lines.append("")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("json", type=Path, help="file written by pytest --benchmark-json")
    parser.add_argument("-o", "--output", type=Path, help="write the markdown here (default: stdout)")
    args = parser.parse_args(argv)
    text = render(json.loads(args.json.read_text(encoding="utf-8")))
    if args.output:
        args.output.write_text(text + "\n", encoding="utf-8")
    else:
        sys.stdout.write(text + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
