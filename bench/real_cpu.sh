#!/usr/bin/env bash
# Model paths at released PE-S shapes on CPU (preset "real": full depth, 10 s of audio, 8 frames at 336 px,
# one caption per clip), fp32, every backend against transformers on the same weights; time and peak
# memory per backend. About 10 minutes on 2 quiet cores. Results: bench/results/cpu-real-DATE.{json,md}.
#
#   bench/real_cpu.sh [--overwrite] [extra pytest args]
#
# OMP_WAIT_POLICY=PASSIVE (set by bench/conftest.py too): spin-waiting OpenMP threads made timings swing up
# to 8x on shared machines. PE_AV_SNAKE_COMPILE=1: the DAC's one-pass Snake compiles in the warm-up call,
# not in a timed round. torch.compile cases are off (compiling ViT-L and ModernBERT takes longer than the run).
set -euo pipefail
cd "$(dirname "$0")/.."
overwrite=0
if [[ "${1:-}" == "--overwrite" ]]; then overwrite=1; shift; fi
out="bench/results/cpu-real-$(date -u +%F)"
if [[ -e "$out.json" && $overwrite == 0 ]]; then
    echo "$out.json exists; pass --overwrite to replace it" >&2
    exit 1
fi
python="${PYTHON:-python}"
tmp="$(mktemp "$out.json.XXXXXX")"
trap 'rm -f "$tmp"' EXIT
OMP_WAIT_POLICY="${OMP_WAIT_POLICY:-PASSIVE}" PE_AV_BENCH_DEVICE=cpu PE_AV_BENCH_PRESET=real PE_AV_BENCH_COMPILE=0 \
    PE_AV_SNAKE_COMPILE="${PE_AV_SNAKE_COMPILE:-1}" \
    "$python" -m pytest bench/bench_models.py --benchmark-only --benchmark-json="$tmp" "$@"
sync "$tmp" 2>/dev/null || true
mv "$tmp" "$out.json"
trap - EXIT
"$python" bench/report.py "$out.json" -o "$out.md"
echo "wrote $out.json and $out.md"
