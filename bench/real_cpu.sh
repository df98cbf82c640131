#!/usr/bin/env bash
# Model paths at released PE-S shapes on CPU (preset "real": full depth, 10 s of audio, 8 frames at 336 px,
# one caption per clip), fp32, every backend against transformers on the same weights; time and peak
# memory per backend, then extra peak memory of the audio encoder and its DAC embedder (10 s, 60 s) and of
# the video encoder (8 frames) in fresh processes (bench/cpu_choices.py memory: the in-process peak
# undercounts in a process whose heap holds freed pages). 25-35 minutes on 2 cores of a ~0.1 TFLOP/s AVX2
# CPU (~10 on a 0.45 TFLOP/s one). Results: bench/results/cpu-real-DATE.{json,md} and -memory.jsonl.
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
memtmp="$(mktemp "$out-memory.jsonl.XXXXXX")"
trap 'rm -f "$memtmp"' EXIT
OMP_WAIT_POLICY="${OMP_WAIT_POLICY:-PASSIVE}" PE_AV_SNAKE_COMPILE="${PE_AV_SNAKE_COMPILE:-1}" \
    "$python" bench/cpu_choices.py memory --cases "${PE_AV_MEMORY_CASES:-audio:10,audio:60,dac:10,dac:60,video:8}" > "$memtmp"
sync "$memtmp" 2>/dev/null || true
mv "$memtmp" "$out-memory.jsonl"
trap - EXIT
"$python" bench/report.py "$out.json" --memory "$out-memory.jsonl" -o "$out.md"
echo "wrote $out.json, $out-memory.jsonl and $out.md"
