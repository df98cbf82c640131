"""Per-kernel sm_90 resource report, compiled on this machine without a GPU (see pe_av_kernels._compile_check).

Prints, per compile case: registers, spill bytes, stack, shared memory, and for the attention kernel the
SASS instruction count of its inner (key) loop, found as the shortest backward branch of the listing
that contains ``HMMA``/``HGMMA``/``FFMA``-type dot instructions. Writes a markdown table atomically:

    python bench/kernel_report.py --out bench/results/kernel_report_YYYY-MM-DD.md [--overwrite]

Run it with TRITON_INTERPRET unset (triton must compile, not interpret).
"""

from __future__ import annotations

import argparse
import datetime
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pe_av.atomic import atomic_write_bytes  # noqa: E402
from pe_av_kernels import _compile_check  # noqa: E402


def inner_loop(result: dict) -> str:
    loops = result.get("loops") or []
    if not loops:
        return ""
    # the key loop is the longest backward branch (the others are short loops of the epilogue, if any)
    main = max(loops, key=lambda loop: loop["instructions"])
    return f"{main['instructions']} ({len(loops)} loops)"


def table(results: list[dict]) -> str:
    lines = [
        "| case | warps | stages | registers | spills (st/ld B) | stack B | shared B | SASS | key-loop SASS | ok |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        if "registers" not in r:
            lines.append(f"| {r['name']} | {r['num_warps']} | {r['num_stages']} | | | | | | | {r['problems'][0][:80]} |")
            continue
        lines.append(
            f"| {r['name']} | {r['num_warps']} | {r['num_stages']} | {r['registers']} | "
            f"{r['spill_stores']}/{r['spill_loads']} | {r['stack']} | {r['shared']} | {r.get('sass_instructions', '')} | "
            f"{inner_loop(r)} | {'yes' if r['ok'] else '; '.join(r['problems'])} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("modules", nargs="*", help="kernel files (default: all)")
    parser.add_argument("--out", type=Path, default=None, help="markdown file to write (default: print only)")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing --out file")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    args = parser.parse_args(argv)
    if os.environ.get("TRITON_INTERPRET") not in (None, "", "0"):
        raise SystemExit("unset TRITON_INTERPRET: the report needs triton's compiler")
    if args.out is not None and args.out.exists() and not args.overwrite:
        raise SystemExit(f"{args.out} exists; pass --overwrite to replace it")
    import triton

    results = _compile_check.run(args.modules or None, with_sass=True, workers=args.workers)
    text = (
        f"# sm_90 kernel report ({datetime.date.today().isoformat()})\n\n"
        f"Compiled for GPUTarget('cuda', 90, 32) with triton {triton.__version__}'s bundled ptxas on a CPU-only "
        "machine (`python bench/kernel_report.py`). Key-loop SASS: instructions per thread between a "
        "backward branch and its target (the longest loop of the kernel).\n\n" + table(results) + "\n"
    )
    print(text)
    if args.out is not None:
        atomic_write_bytes(args.out, text.encode(), overwrite=args.overwrite)
    return 0


if __name__ == "__main__":
    sys.exit(main())
