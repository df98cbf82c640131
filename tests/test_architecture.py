"""The layout rules of README "Architecture", checked on the source so that they stay true.

- model code never compares backend strings (only ``pe_av/ops`` and ``pe_av/dispatch.py`` may);
- no import cycle among pe_av's modules at import time;
- no source file over ~400 lines;
- ``pe_av_kernels`` imports nothing from ``pe_av``; each kernel file has the op module of its name, and
  every ``Kernel`` entry of an op table names a kernel the package has.
"""

from __future__ import annotations

import ast
import importlib
import pkgutil
from pathlib import Path

import pytest

import pe_av
import pe_av.ops
from pe_av.dispatch import BACKENDS, Kernel, Op

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("pe_av", "pe_av_kernels")
MAX_LINES = 400


def source_files(package: str = "") -> list[Path]:
    roots = [ROOT / p for p in PACKAGES] if not package else [ROOT / package]
    return sorted(path for root in roots for path in root.rglob("*.py"))


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def test_the_tree_is_what_the_checks_read():
    names = {module_name(p) for p in source_files()}
    assert {"pe_av.dispatch", "pe_av.ops.attention", "pe_av_kernels.attention", "pe_av.models.pe_transformer"} <= names


def backend_comparisons(tree: ast.AST) -> list[int]:
    """Lines comparing something with a backend name (``x == "eager"``, ``x in ("sdpa", "triton")``)."""
    lines = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Compare):
            continue
        for operand in [node.left, *node.comparators]:
            constants = operand.elts if isinstance(operand, (ast.Tuple, ast.List, ast.Set)) else [operand]
            if any(isinstance(c, ast.Constant) and c.value in BACKENDS for c in constants):
                lines.append(node.lineno)
    return lines


def test_no_backend_string_comparison_outside_ops_and_dispatch():
    allowed = {ROOT / "pe_av" / "dispatch.py"}
    offenders = {}
    for path in source_files("pe_av"):
        if path in allowed or (ROOT / "pe_av" / "ops") in path.parents:
            continue
        lines = backend_comparisons(ast.parse(path.read_text()))
        if lines:
            offenders[str(path.relative_to(ROOT))] = lines
    assert not offenders, offenders


def test_the_backend_check_finds_comparisons():
    """The check above can fail: it finds each spelling it is meant to find."""
    code = 'a = b == "eager"\nif backend in ("sdpa", "triton"):\n    pass\nc = "triton" != d\n'
    assert backend_comparisons(ast.parse(code)) == [1, 2, 4]


def import_time_edges(path: Path, known: set[str]) -> set[str]:
    """pe_av modules ``path`` imports when it is imported (module level, outside ``if TYPE_CHECKING``)."""
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    edges = set()

    def visit(statements):
        for node in statements:
            if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
                continue
            if isinstance(node, (ast.If, ast.Try)):
                visit(node.body)
                visit(getattr(node, "orelse", []))
                for handler in getattr(node, "handlers", []):
                    visit(handler.body)
                visit(getattr(node, "finalbody", []))
            elif isinstance(node, ast.Import):
                edges.update(alias.name for alias in node.names if alias.name in known)
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = package.split(".")[: len(package.split(".")) - node.level + 1]
                    target = ".".join(base + ([node.module] if node.module else []))
                else:
                    target = node.module or ""
                for alias in node.names:
                    submodule = f"{target}.{alias.name}"
                    if submodule in known:
                        edges.add(submodule)
                    elif target in known:
                        edges.add(target)

    visit(ast.parse(path.read_text()).body)
    # a submodule always finds its parent packages initialised first: those edges are not cycles
    return {e for e in edges if e != name and not name.startswith(e + ".")}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt) :] + [nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (found := visit(node)):
            return found
    return None


def test_no_import_cycle():
    files = source_files()
    known = {module_name(p) for p in files}
    graph = {module_name(p): import_time_edges(p, known) for p in files}
    assert find_cycle(graph) is None, find_cycle(graph)


def test_the_cycle_check_finds_cycles():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


@pytest.mark.parametrize("path", source_files(), ids=lambda p: str(p.relative_to(ROOT)))
def test_source_files_stay_small(path):
    lines = len(path.read_text().splitlines())
    assert lines <= MAX_LINES, f"{path.relative_to(ROOT)} has {lines} lines; split it by concept"


def test_kernels_import_nothing_from_pe_av():
    known = {module_name(p) for p in source_files()}
    for path in source_files("pe_av_kernels"):
        tree = ast.parse(path.read_text())
        imported = [
            n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module and n.level == 0
        ] + [a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names]
        assert not [m for m in imported if m == "pe_av" or m.startswith("pe_av.")], path
    assert known  # read something


def test_each_kernel_file_has_its_op_module():
    kernels = {p.stem for p in (ROOT / "pe_av_kernels").glob("*.py") if not p.stem.startswith("_")}
    ops = {p.stem for p in (ROOT / "pe_av" / "ops").glob("*.py") if not p.stem.startswith("_")}
    assert kernels and kernels <= ops, kernels - ops


def all_ops() -> list[Op]:
    found = []
    for info in pkgutil.iter_modules(pe_av.ops.__path__):
        module = importlib.import_module(f"pe_av.ops.{info.name}")
        found += [value for value in vars(module).values() if isinstance(value, Op)]
    return found


def test_every_kernel_entry_names_a_kernel():
    pe_av_kernels = pytest.importorskip("pe_av_kernels")
    entries = [op.forms["triton"] for op in all_ops() if isinstance(op.forms["triton"], Kernel)]
    assert {e.name for e in entries} == set(pe_av_kernels.KERNELS)
    for entry in entries:
        assert callable(getattr(pe_av_kernels, entry.name))


def test_every_op_table_has_every_backend():
    ops = all_ops()
    assert len(ops) >= 8
    for op in ops:
        assert set(op.forms) == set(BACKENDS), op
        assert callable(op.forms["eager"]) and callable(op.forms["sdpa"]), op
    with pytest.raises(ValueError, match="exactly the backends"):
        Op("broken", {"eager": abs, "sdpa": abs})
    assert pe_av.__version__
