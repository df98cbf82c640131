#!/usr/bin/env bash
# bench/gpu_check.sh: the project's GPU check, as two commands of at most 5 minutes each.
#
#   bash bench/gpu_check.sh A OUTDIR [--smoke]   # CUDA kernel tests (full shapes) + per-op microbench
#   bash bench/gpu_check.sh B OUTDIR [--smoke]   # model paths (hf/eager/sdpa/triton; compile: audio_encoder only)
#
# Everything goes into OUTDIR, named by part: A-log.txt (all output), A-steps.tsv (step, exit status,
# seconds, limit), A-device.json (device, clocks, versions, import checks), A-nvidia-smi.txt,
# A-clocks.csv (clocks before and after each step), A-junit-kernels.xml, A-bench-ops.json/.md,
# A-bench-ops.partial.jsonl (one line per finished benchmark, kept if a step is killed); B likewise with
# B-bench-models.json/.md. Exit status 0 when every step passed, 1 otherwise (A-steps.tsv says which).
#
# Steps, with the durations expected on an H200 host (16 cores; predictions until the first run). A Triton
# kernel costs ~1 s to compile on a fast CPU (norms, elementwise) and ~3-4 s (flash forward, dq, dk/dv);
# counted by launching every kernel test under the interpreter and keying each launch as triton's cache
# does (kernel, dtypes, constexprs, 16-divisibility of ints and pointers): the 269 CPU-runnable kernel
# tests launch 283 distinct specializations and the 39 CUDA-only ones ~115 more, ~400 in all, ~10 min of
# compiling; part A therefore runs the CUDA-only full-shape tests in bf16 and fp32 (fp16 and the other
# head dims: PE_AV_KERNEL_TESTS=all, ~10 min, as a separate command), the rest being covered on CPU in CI.
#   A, B  setup      unpack the wheels carried in .whl/ into a temporary site dir        ~2 s   (limit 60 s)
#   A, B  preflight  bench/device_info.py: device, clocks, versions; torch, pytest and
#                    pytest-benchmark import (else stop: carry their wheels), triton,
#                    transformers, timm found; `import pe_av` works with av, tokenizers
#                    and tqdm blocked                                                    ~5 s   (limit 60 s)
#   A     kernels    pytest -m kernels -k "$KERNEL_TESTS": 21 CUDA tests at full shapes
#                    (attention bf16 at head_dim 128 and 64 with GQA, fp32 model shape,
#                    ViT window mask; LayerNorm, bias+GELU/GeGLU, RMSNorm, SwiGLU, Snake
#                    both layouts, fp32 + bf16; forward and backward): ~60 kernel compiles
#                    (~100 s) + collection and the eager references (~20 s)             ~120 s (limit 150 s)
#                    (never tests/test_sm90_compile.py: a CPU-only ptxas check, minutes)
#   A     ops        bench/bench_kernels.py + bench_kernels_encoders.py: peaks (1 GiB
#                    copy, 8192³ bf16/fp16 GEMMs, ~3 s), 80 cases (PE: RMSNorm ±residual,
#                    SwiGLU, RoPE at T=250/750, attention forward and forward+backward at
#                    T=750/1025; ViT/ModernBERT LayerNorm ±residual, bias+GELU, GeGLU, ViT
#                    and windowed attention; DAC Snake × 2 stages × 2 layouts), do_bench +
#                    CUDA graph ~0.5 s each (~40 s), ~33 Triton compiles (~65 s, fewer
#                    when the kernel tests compiled them); no torch.compile rows here
#                    (PE_AV_BENCH_COMPILE=1 adds 10, ~70 s, past the budget)             ~115 s (limit: the rest)
#   B     models     bench/bench_models.py: build the transformers model, save, load ours
#                    (~1.5 B parameters, ~20 s), 5 paths × hf/eager/sdpa/triton (~40 s,
#                    + ~30 s of ViT/DAC/ModernBERT kernel compiles), the PE training step
#                    (fusion stack forward + backward at T=1025, hf/eager/sdpa/triton:
#                    ~5 s + ~15 s of backward kernel compiles), then torch.compile of the
#                    audio encoder only (~90-120 s)                                     ~230 s (limit: the rest)
#   A, B  report     bench/report.py: markdown from the JSON                             ~1 s
# Each step gets min(its limit, what is left of PE_AV_CHECK_BUDGET, default 285 s) and is stopped with
# SIGINT (pytest then still writes its JUnit XML and benchmark JSON), SIGKILL 20 s later.
#
# Why only the audio encoder is compiled: its DAC runs layer by layer under torch.compile, and inductor
# fuses each Snake (5 elementwise passes over activations of 250 MB at 10 s × 4 clips) into one pass;
# the other paths are GEMM-bound (ViT-L, PE-L) or launch-bound (text), and compiling all five would
# take longer than one command may run.
#
# What to carry (the GPU machine has Python 3.12, torch, triton, transformers 5.17, safetensors, numpy,
# no av and no registry). The source tree travels as the working tree; nothing is installed from a
# registry here: bench/carried_wheels.py unpacks the wheels found in .whl/ at the repository root
# (git-ignored, so name it: carry=[".whl"]), skipping those already installed at their version. On a
# machine with a registry, from the repository root (about 19 MB in all):
#   P="--only-binary=:all: --python-version 3.12 --platform manylinux_2_28_x86_64 --implementation cp"
#   pip download -d .whl $P pytest==9.2.0 pytest-benchmark==5.3.1   # + pluggy iniconfig pygments packaging
#                                                                    #   py-cpuinfo2; needed if absent there
#   pip download -d .whl $P --no-deps timm==1.0.31 torchvision==0.29.1 pillow   # B's hf model rows
# (transformers' PeAudioVideoModel builds its video tower with timm; timm imports torchvision, which
# imports PIL; the hf op rows of part A need none of them).
# torchvision must be the build for the machine's torch: torchvision 0.M pairs with torch 2.(M-15)
# (torch 2.14.x with 0.29.x), and a torch with a +cuXYZ suffix needs the torchvision of the same CUDA
# variant (from the PyTorch wheel index of that variant). A-device.json records the machine's torch, so
# part A can run first and tell which. A torchvision for another torch is not unpacked; without timm
# every hf model row skips, saying why, and ours run on random weights of the same config.
# Not needed: transformers 5.24 (the hf baseline runs on the machine's 5.17: the PE classes it uses
# differ only in ways that do not change what is timed), tokenizers, av, tqdm (pe_av imports them lazily).
#
# --smoke runs the same steps on CPU at tiny shapes (preset "smoke", CPU stand-in for do_bench, dynamo's
# eager compile backend, only the first kernel test after collecting all) in well under a minute per part;
# tests/test_gpu_check_smoke.py runs it in CI so that this script cannot rot.
set -uo pipefail

usage() { sed -n '2,5p' "$0" >&2; exit 2; }
[[ $# -ge 2 && ( $1 == A || $1 == B ) ]] || usage
part=$1
smoke=0
[[ ${3:-} == --smoke ]] && smoke=1
[[ $# -le 2 || $smoke == 1 ]] || usage

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
mkdir -p "$2" && out=$(cd "$2" && pwd) || { echo "cannot create $2" >&2; exit 2; }
cd "$repo" || exit 2
py=${PE_AV_PYTHON:-$(command -v python3 || command -v python)}
budget=${PE_AV_CHECK_BUDGET:-285}
wheels=${PE_AV_WHEELS:-$repo/.whl}
work=$(mktemp -d "${TMPDIR:-/tmp}/pe-av-gpu-check.XXXXXX")
site=$work/site
trap 'rm -rf "$work"' EXIT

log=$out/$part-log.txt
steps=$out/$part-steps.tsv
clocks=$out/$part-clocks.csv
: >"$log"
printf 'step\texit\tseconds\tlimit\n' >"$steps"
failed=0

export PYTHONPATH="$repo:$repo/bench:$site${PYTHONPATH:+:$PYTHONPATH}"
if [[ $smoke == 1 ]]; then
    export PE_AV_BENCH_PRESET=smoke PE_AV_BENCH_DEVICE=cpu PE_AV_BENCH_TIMER=emulated PE_AV_BENCH_DO_BENCH_MS=1,5
    export PE_AV_BENCH_COMPILE_BACKEND=eager CUDA_VISIBLE_DEVICES="" OMP_NUM_THREADS=1
fi

say() { echo "[gpu_check $part $(date +%H:%M:%S)] $*" | tee -a "$log"; }

log_clocks() {  # one CSV row per GPU, prefixed by the time and the moment
    command -v nvidia-smi >/dev/null || return 0
    nvidia-smi --query-gpu=clocks.sm,clocks.mem,clocks.max.sm --format=csv,noheader 2>/dev/null \
        | sed "s/^/$(date +%T),$1,/" >>"$clocks"
}

# step NAME LIMIT COMMAND...: run COMMAND under min(LIMIT, the time left), record its status
step() {
    local name=$1 limit=$2 left t rc started
    shift 2
    left=$((budget - SECONDS - 5))
    t=$((limit < left ? limit : left))
    if ((t < 5)); then
        say "$name: skipped, no time left of the ${budget} s budget"
        printf '%s\tskipped\t0\t%s\n' "$name" "$limit" >>"$steps"
        failed=1
        return 1
    fi
    say "$name: starting (limit ${t} s)"
    log_clocks "before $name"
    started=$SECONDS
    timeout -s INT -k 20 "$t" "$@" >>"$log" 2>&1
    rc=$?
    log_clocks "after $name"
    ((rc == 124)) && say "$name: stopped at its ${t} s limit"
    say "$name: exit $rc after $((SECONDS - started)) s"
    printf '%s\t%s\t%s\t%s\n' "$name" "$rc" "$((SECONDS - started))" "$t" >>"$steps"
    ((rc == 0)) || failed=1
    return "$rc"
}

kernel_test_files() {  # every kernel test file, the ones added later included, but the sm_90 compile check
    { ls tests/test_kernels_*.py tests/test_bad_inputs_kernels.py; grep -l 'pytest.mark.kernels' tests/test_*.py; } \
        2>/dev/null | grep -v -x 'tests/test_sm90_compile.py' | sort -u
}

# the CUDA-only tests at full shapes, bf16 and fp32, attention at the models' head dims (see the header);
# PE_AV_KERNEL_TESTS=all runs every kernel test and nothing else (~400 compiles, ~10 min: a command of its
# own, with PE_AV_CHECK_BUDGET=590)
KERNEL_TESTS='(full_size_cuda and not torch.float16) or (half_precision_cuda and dtype1 and not 4-1-80 and not 2-2-256)'
KERNEL_TESTS+=' or fp32_cuda_model_shape'


report() {  # report JSON...: markdown beside the first JSON
    local files=() f
    for f in "$@"; do [[ -s $f ]] && files+=("$f"); done
    ((${#files[@]})) || { say "report: no benchmark JSON to report"; failed=1; return 1; }
    step report 30 "$py" bench/report.py "${files[@]}" -o "${files[0]%.json}.md"
}

say "part $part$([[ $smoke == 1 ]] && echo ' (smoke)') into $out; python $py; budget ${budget} s"
command -v nvidia-smi >/dev/null && timeout 30 nvidia-smi -q >"$out/$part-nvidia-smi.txt" 2>&1
step setup 60 "$py" bench/carried_wheels.py "$wheels" "$site"
probe=torch,pytest,pytest_benchmark,triton,transformers
[[ $part == B ]] && probe+=,timm,torchvision
step preflight 60 "$py" bench/device_info.py "$out/$part-device.json" --check-imports --probe="$probe"
if [[ $(tail -n 1 "$steps" | cut -f2) == 2 ]]; then
    say "preflight: torch, pytest or pytest-benchmark is missing (see $part-log.txt); carry their wheels"
    exit 1
fi

pytest_args=(-p no:cacheprovider -q -rs --durations=15)
if [[ $part == A ]]; then
    mapfile -t files < <(kernel_test_files)
    select_args=(-k "$KERNEL_TESTS")
    [[ ${PE_AV_KERNEL_TESTS:-} == all ]] && select_args=()
    [[ $smoke == 1 ]] && select_args+=(-p first_test_only)
    kernel_limit=150
    [[ ${PE_AV_KERNEL_TESTS:-} == all ]] && kernel_limit=600
    step kernels $kernel_limit "$py" -m pytest "${pytest_args[@]}" "${select_args[@]}" -m kernels "${files[@]}" \
        --junitxml="$out/A-junit-kernels.xml" -o junit_suite_name=pe-av-kernels
    if [[ ${PE_AV_KERNEL_TESTS:-} == all ]]; then
        say "PE_AV_KERNEL_TESTS=all: the kernel tests only (run part A again without it for the ops)"
        column -t -s $'\t' "$steps" 2>/dev/null | tee -a "$log"
        exit "$failed"
    fi
    export PE_AV_BENCH_JSONL=$out/A-bench-ops.partial.jsonl
    export PE_AV_BENCH_COMPILE=${PE_AV_BENCH_COMPILE:-0}  # the ops' torch.compile rows would not fit (header)
    step ops 300 "$py" -m pytest "${pytest_args[@]}" bench/bench_kernels.py bench/bench_kernels_encoders.py --benchmark-only \
        --benchmark-json="$out/A-bench-ops.json" --benchmark-columns=min,median,mean,rounds --benchmark-sort=name
    report "$out/A-bench-ops.json"
else
    export PE_AV_BENCH_JSONL=$out/B-bench-models.partial.jsonl
    export PE_AV_BENCH_COMPILE_PATHS=${PE_AV_BENCH_COMPILE_PATHS-audio_encoder}
    step models 300 "$py" -m pytest "${pytest_args[@]}" bench/bench_models.py --benchmark-only \
        --benchmark-json="$out/B-bench-models.json" --benchmark-columns=min,median,mean,rounds --benchmark-sort=name
    report "$out/B-bench-models.json"
fi
say "done in ${SECONDS} s; steps:"
column -t -s $'\t' "$steps" 2>/dev/null | tee -a "$log" || tee -a "$log" <"$steps"
exit "$failed"
