"""Unpack the wheels carried to a machine that has no package registry (first step of bench/gpu_check.sh).

    python bench/carried_wheels.py WHEEL_DIR SITE_DIR

Each ``*.whl`` in WHEEL_DIR is unpacked into SITE_DIR, which the caller puts on ``PYTHONPATH`` ahead
of site-packages (a wheel is a zip of the files an install puts in site-packages; no pip needed). Skipped:
a distribution already installed at the same version, and a wheel that pins a torch other than the one
installed (a torchvision built for another torch would break ``import timm``). One line
per wheel says what happened. Exit status 0, or 1 if a wheel could not be read.
"""

from __future__ import annotations

import email.parser
import importlib.metadata
import shutil
import sys
import zipfile
from pathlib import Path


def _dist_and_version(wheel: Path) -> tuple[str, str]:
    parts = wheel.name[: -len(".whl")].split("-")
    return parts[0], parts[1]


def _metadata(archive: zipfile.ZipFile) -> email.message.Message:
    name = next(n for n in archive.namelist() if n.endswith(".dist-info/METADATA") and n.count("/") == 1)
    return email.parser.Parser().parsestr(archive.read(name).decode("utf-8", "replace"))


def _release(version: str) -> str:
    return version.split("+", 1)[0]


def torch_pin_problem(dist: str, version: str, requires: list[str], torch_version: str | None) -> str | None:
    """Why a wheel (``dist`` ``version`` with these ``Requires-Dist`` lines) cannot work with the
    installed torch, or None: an exact ``torch==`` pin of another release, or a torchvision built for
    another torch (torchvision 0.M pairs with torch 2.(M-15), whatever its metadata says)."""
    wanted = None
    for line in requires:
        requirement, _, marker = line.partition(";")
        spec = requirement.replace(" ", "").replace("(", "").replace(")", "")
        if spec.startswith("torch==") and "extra" not in marker:
            wanted = spec.removeprefix("torch==")
    if dist.lower() == "torchvision" and wanted is None:
        minor = int(version.split(".")[1]) - 15
        wanted = f"2.{minor}.*"
    if wanted is None:
        return None
    if torch_version is None:
        return f"it needs torch {wanted} and torch is not installed"
    have = _release(torch_version).split(".")
    if wanted.endswith(".*"):
        matches = have[:2] == wanted.removesuffix(".*").split(".")[:2]
    else:
        matches = _release(wanted) == _release(torch_version)
    return None if matches else f"it needs torch {wanted}, this machine has torch {torch_version}"


def _installed(dist: str) -> str | None:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None


def unpack(wheel: Path, site: Path) -> None:
    """Unpack like an install: the wheel's ``*.data/purelib`` and ``*.data/platlib`` go to the top."""
    with zipfile.ZipFile(wheel) as archive:
        archive.extractall(site)
    for data in site.glob("*.data"):
        for kind in ("purelib", "platlib"):
            for item in (data / kind).glob("*") if (data / kind).is_dir() else ():
                target = site / item.name
                if target.exists():
                    shutil.rmtree(target) if target.is_dir() else target.unlink()
                shutil.move(str(item), str(target))
        shutil.rmtree(data, ignore_errors=True)


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print(__doc__)
        return 2
    wheels_dir, site = Path(argv[0]), Path(argv[1])
    wheels = sorted(wheels_dir.glob("*.whl")) if wheels_dir.is_dir() else []
    if not wheels:
        print(f"no wheels in {wheels_dir}: using the packages installed here")
        return 0
    site.mkdir(parents=True, exist_ok=True)
    torch_version = _installed("torch")
    status = 0
    for wheel in wheels:
        dist, version = _dist_and_version(wheel)
        try:
            with zipfile.ZipFile(wheel) as archive:
                requires = _metadata(archive).get_all("Requires-Dist") or []
        except (zipfile.BadZipFile, StopIteration, OSError) as error:
            print(f"{wheel.name}: cannot read it ({error})")
            status = 1
            continue
        installed = _installed(dist)
        if installed == version:
            print(f"{wheel.name}: {dist} {installed} is already installed")
            continue
        problem = torch_pin_problem(dist, version, requires, torch_version) if dist.lower() != "torch" else None
        if problem:
            print(f"{wheel.name}: skipped, {problem}")
            continue
        unpack(wheel, site)
        print(f"{wheel.name}: unpacked" + (f" (shadows the installed {installed})" if installed else ""))
    return status


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
