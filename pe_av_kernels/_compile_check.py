"""Compile kernels for sm_90 on a machine without a GPU, and read what ptxas made of them.

Every kernel file of ``pe_av_kernels`` lists the configurations its launcher can choose as
:class:`~pe_av_kernels._common.CompileCase` objects (``compile_cases()``). :func:`compile_case` builds one
with ``triton.compile`` of an ``ASTSource`` for ``GPUTarget("cuda", 90, 32)``, which runs triton's bundled
ptxas, and returns registers, spill bytes, stack and shared memory (from ptxas' own report) and the SASS
(from the bundled ``cuobjdump``). No CUDA driver is needed.

This must run with triton compiling, not interpreting: ``TRITON_INTERPRET`` must be unset when triton is
first imported (the test suite runs ``python -m pe_av_kernels._compile_check`` in a subprocess for that).
Output of the command: one JSON object per case per line (``--sass`` adds the backward-branch loops).
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import importlib.util
import io
import json
import os
import pkgutil
import re
import subprocess
import sys
import tempfile
from concurrent.futures import ProcessPoolExecutor

SM90_SHARED_LIMIT = 227 * 1024  # bytes of shared memory one block may use on sm_90
MAX_REGISTERS = 255


def kernel_modules() -> list[str]:
    """Names of the kernel files (``pe_av_kernels.<name>``, private helpers excluded)."""
    import pe_av_kernels

    return sorted(m.name for m in pkgutil.iter_modules(pe_av_kernels.__path__) if not m.name.startswith("_"))


def all_cases(modules: list[str] | None = None) -> list:
    """Every compile case of the given kernel files (default: all)."""
    cases = []
    for name in modules or kernel_modules():
        module = importlib.import_module(f"pe_av_kernels.{name}")
        cases += module.compile_cases()
    return cases


def _ptxas_report(log: str) -> dict:
    used = re.search(r"Used (\d+) registers", log)
    spill = re.search(r"(\d+) bytes spill stores, (\d+) bytes spill loads", log)
    stack = re.search(r"(\d+) bytes stack frame", log)
    if used is None or spill is None:
        raise RuntimeError(f"could not read ptxas' report:\n{log}")
    return dict(
        registers=int(used.group(1)),
        spill_stores=int(spill.group(1)),
        spill_loads=int(spill.group(2)),
        stack=int(stack.group(1)) if stack else 0,
    )


def _cuobjdump() -> str:
    from triton import knobs

    return os.path.join(os.path.dirname(knobs.nvidia.ptxas.path), "cuobjdump")


def sass_of(cubin: bytes) -> str:
    """The SASS listing of a cubin (bundled ``cuobjdump --dump-sass``)."""
    with tempfile.NamedTemporaryFile(suffix=".cubin") as handle:
        handle.write(cubin)
        handle.flush()
        done = subprocess.run([_cuobjdump(), "--dump-sass", handle.name], capture_output=True, text=True, check=True)
    return done.stdout


_SASS_LINE = re.compile(r"/\*([0-9a-f]{4,})\*/\s+(.*?);")
_BRANCH = re.compile(r"\bBRA\b.*?(0x[0-9a-f]+)")


def sass_loops(sass: str) -> list[dict]:
    """Loops of a SASS listing, found by their backward branches: for each ``BRA`` whose target lies at or
    before it, the loop's first and last address and its instruction count (innermost loops are the
    shortest)."""
    instructions = [(int(m.group(1), 16), m.group(2)) for m in _SASS_LINE.finditer(sass)]
    loops = []
    for address, text in instructions:
        branch = _BRANCH.search(text)
        if branch is None:
            continue
        target = int(branch.group(1), 16)
        if target <= address:
            body = [a for a, _ in instructions if target <= a <= address]
            loops.append(dict(start=hex(target), end=hex(address), instructions=len(body)))
    return loops


def compile_case(case, with_sass: bool = False) -> dict:
    """Compile ``case`` for sm_90; its resources, and ``ok`` False with ``problems`` where it compiles
    badly (an error, spills, shared memory over :data:`SM90_SHARED_LIMIT`)."""
    import triton
    from triton import knobs
    from triton.backends.compiler import GPUTarget

    fn = case.fn
    names = list(fn.arg_names)
    missing = [n for n in names if n not in case.signature and n not in case.constexprs]
    unknown = [n for n in (*case.signature, *case.constexprs) if n not in names]
    result = dict(name=case.name, num_warps=case.num_warps, num_stages=case.num_stages)
    if missing or unknown:
        return dict(result, ok=False, problems=[f"signature mismatch: missing {missing}, unknown {unknown}"])
    signature = {n: ("constexpr" if n in case.constexprs else case.signature[n]) for n in names}
    attrs = {(names.index(n),): [["tt.divisibility", 16]] for n in case.divisible}
    source = triton.compiler.ASTSource(fn, signature, dict(case.constexprs), attrs)
    log = io.StringIO()
    knobs.nvidia.dump_ptxas_log = True  # ptxas' -v report is printed: read it
    knobs.compilation.always_compile = True  # a cached kernel would skip ptxas and its report
    try:
        with contextlib.redirect_stdout(log):
            compiled = triton.compile(
                source, target=GPUTarget("cuda", 90, 32),
                options=dict(num_warps=case.num_warps, num_stages=case.num_stages),
            )
    except Exception as error:  # noqa: BLE001 - any compile failure is the finding
        return dict(result, ok=False, problems=[f"compile error: {type(error).__name__}: {error}"[:2000]])
    result.update(_ptxas_report(log.getvalue()), shared=int(compiled.metadata.shared))
    problems = []
    if result["spill_stores"] or result["spill_loads"]:
        problems.append(f"register spills: {result['spill_stores']} B stored, {result['spill_loads']} B loaded")
    if result["shared"] > SM90_SHARED_LIMIT:
        problems.append(f"shared memory {result['shared']} B over the sm_90 limit {SM90_SHARED_LIMIT} B")
    if with_sass:
        sass = sass_of(compiled.asm["cubin"])
        result["sass_instructions"] = len(_SASS_LINE.findall(sass))
        result["loops"] = sass_loops(sass)
    return dict(result, ok=not problems, problems=problems)


def load_module(name: str):
    """``pe_av_kernels.<name>``, or the Python file ``name`` when it ends in ``.py`` (cases kept elsewhere,
    e.g. the test suite's deliberately bad ones)."""
    if not name.endswith(".py"):
        return importlib.import_module(f"pe_av_kernels.{name}")
    key = "_compile_cases_" + re.sub(r"\W", "_", os.path.abspath(name))
    if key not in sys.modules:
        spec = importlib.util.spec_from_file_location(key, name)
        module = importlib.util.module_from_spec(spec)
        sys.modules[key] = module
        spec.loader.exec_module(module)
    return sys.modules[key]


def _compile_one(args: tuple) -> dict:
    module, index, with_sass = args
    case = load_module(module).compile_cases()[index]
    return dict(compile_case(case, with_sass), module=module)


def run(modules: list[str] | None, with_sass: bool, workers: int, names: str | None = None) -> list[dict]:
    """Compile every case of ``modules`` (kernel file names or ``.py`` paths) in ``workers`` processes;
    results in case order."""
    jobs = []
    for module in modules or kernel_modules():
        cases = load_module(module).compile_cases()
        jobs += [(module, i, with_sass) for i, case in enumerate(cases) if names is None or re.search(names, case.name)]
    if workers <= 1:
        return [_compile_one(job) for job in jobs]
    with ProcessPoolExecutor(workers) as pool:
        return list(pool.map(_compile_one, jobs))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("modules", nargs="*", help="kernel files, or .py files with compile_cases() (default: every kernel file)")
    parser.add_argument("--sass", action="store_true", help="also count SASS instructions and find loops")
    parser.add_argument("--match", default=None, help="only cases whose name matches this regex")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    args = parser.parse_args(argv)
    if os.environ.get("TRITON_INTERPRET") not in (None, "", "0"):
        raise SystemExit("unset TRITON_INTERPRET: the compile check needs triton's compiler, not its interpreter")
    for result in run(args.modules or None, args.sass, args.workers, args.match):
        print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
