"""Every command and Python block of the docs runs, in the order it is written.

The docs are README.md and docs/*.md; their fenced ``console`` blocks (``$ `` lines),
``bash`` blocks (``&&``-joined commands; installing and the test run itself are CI's) and
``python`` blocks. Those on the paper case run in the ``slow`` test; all others in the
default run.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from mosaik_bilevel.simulators.attributes import markdown_table

ROOT = Path(__file__).resolve().parents[1]
GUIDE = ROOT / "docs" / "user_guide.md"


DOCS = [ROOT / "README.md", GUIDE, *sorted(p for p in (ROOT / "docs").glob("*.md")
                                          if p != GUIDE)]
#: What the docs' bash blocks do that is not ours to run here: installing, and CI itself.
NOT_RUN = ("pip install", "python -m pytest")


def blocks(docs=DOCS) -> list[tuple[str, str]]:
    """(kind, text) of every command and Python block of ``docs``, in document order."""
    out = []
    for doc in docs:
        for kind, body in re.findall(r"```(console|bash|python)\n(.*?)```", doc.read_text(),
                                     re.S):
            if kind == "console":
                out += [("command", line[2:].strip()) for line in body.splitlines()
                        if line.startswith("$ ")]
            elif kind == "bash":
                out += [("command", part.strip()) for line in body.splitlines()
                        if line.strip() and not line.lstrip().startswith("#")
                        for part in line.split("&&") if not part.strip().startswith(NOT_RUN)]
            else:
                out.append(("python", body))
    return out


def _is_paper(kind: str, text: str) -> bool:
    return "paper" in text


def _run_command(command: str, cwd: Path) -> subprocess.CompletedProcess:
    args = shlex.split(command)
    if args[0] == "mosaik-bilevel":
        args = [sys.executable, "-m", "mosaik_bilevel", *args[1:]]
    elif args[0] == "python":
        args = [sys.executable, *args[1:]]
    else:
        raise AssertionError(f"the guide runs only mosaik-bilevel and python: {command}")
    return subprocess.run(args, cwd=cwd, capture_output=True, text=True, timeout=3600,
                          env={**os.environ, "MPLBACKEND": "Agg"})


def _check_outputs(command: str, cwd: Path) -> None:
    args = shlex.split(command)
    if "--out" in args:
        out = cwd / args[args.index("--out") + 1]
        assert out.is_dir() and any(out.iterdir()), command
    if args[:2] == ["mosaik-bilevel", "report"]:
        assert (cwd / args[2] / "report" / "report.html").exists(), command


def _run(selected, cwd: Path) -> int:
    shutil.copytree(ROOT / "docs" / "examples", cwd / "docs" / "examples")
    ran = 0
    for kind, text in selected:
        if kind == "command":
            proc = _run_command(text, cwd)
            assert proc.returncode == 0, f"{text}\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}"
            _check_outputs(text, cwd)
        else:
            proc = subprocess.run([sys.executable, "-c", text], cwd=cwd, capture_output=True,
                                  text=True, timeout=600)
            assert proc.returncode == 0, f"{text}\n{proc.stderr[-2000:]}"
        ran += 1
    return ran


def test_guide_has_commands_and_python_blocks():
    kinds = [k for k, _ in blocks([GUIDE])]
    assert kinds.count("command") >= 10 and kinds.count("python") >= 2
    every = blocks()
    assert ("command", "mosaik-bilevel solve --case paper --method exact --out results/paper"
            ) in every  # the README's first command
    assert not any(t.startswith(NOT_RUN) for _, t in every)


def test_attribute_table_is_generated():
    assert markdown_table() in GUIDE.read_text()


def test_every_command_and_block_runs(tmp_path):
    selected = [(k, t) for k, t in blocks() if not _is_paper(k, t)]
    assert _run(selected, tmp_path) == len(selected)


@pytest.mark.slow
@pytest.mark.timeout(7200)  # every paper command of the docs, each up to 600 s
def test_every_paper_command_runs(tmp_path):
    selected = [(k, t) for k, t in blocks() if _is_paper(k, t)]
    assert selected and _run(selected, tmp_path) == len(selected)
