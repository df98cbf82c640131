"""The README's "Zero-shot classification, sound events and long media" examples run as written, on the demo's
files (``pe-av demo --keep DIR``, run here too)."""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path

from cli_helpers import run

README = Path(__file__).resolve().parents[1] / "README.md"
SECTION = "## Zero-shot classification, sound events and long media"


def blocks(language: str) -> list[str]:
    text = README.read_text()
    section = text[text.index(SECTION):]
    section = section[: section.index("\n## ", 1)]
    return re.findall(rf"```{language}\n(.*?)```", section, flags=re.DOTALL)


def test_readme_commands_and_python_run_on_the_demo(tmp_path):
    commands = [line for line in blocks("bash")[0].splitlines() if line.startswith("pe-av ")]
    assert [c.split()[1] for c in commands] == ["demo", "classify", "classify", "detect", "embed"]
    outputs = []
    for command in commands:
        argv = shlex.split(command.replace("$DIR", str(tmp_path)))[1:]
        status, out, err = run(argv + (["--no-progress"] if argv[0] != "demo" else []))
        assert status == 0, f"{command}\n{err}"
        outputs.append(out)
    assert "a pure tone" in outputs[1] and outputs[2].startswith("input,rank,label,probability,logit")
    events = json.loads(outputs[3])
    assert all(set(e) == {"query", "onset_s", "offset_s", "score"} for e in events)
    assert (tmp_path / "events.png").read_bytes()[:4] == b"\x89PNG" and (tmp_path / "video.npy").is_file()
    code = blocks("python")[0].replace("/tmp/pe-av-demo", str(tmp_path))
    exec(compile(code, "README.md", "exec"), {})  # noqa: S102 - the README example is the code under test
    assert (tmp_path / "events-api.png").is_file()
