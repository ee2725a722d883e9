"""The README's quickstart runs on this CPU machine and prints what the README shows."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"


def quickstart() -> list[tuple[str, list[str]]]:
    """[(command, expected output lines)] of the first code block under '## Quickstart'."""
    text = README.read_text()
    section = text[text.index("## Quickstart"):]
    block = section[section.index("```\n") + 4:]
    block = block[:block.index("```")]
    steps: list[tuple[str, list[str]]] = []
    lines = block.splitlines()
    i = 0
    while i < len(lines):
        line = lines[i]
        if line.startswith("$ "):
            cmd = line[2:]
            while cmd.endswith("\\"):
                i += 1
                cmd = cmd[:-1] + " " + lines[i].strip()
            steps.append((cmd, []))
        elif steps:
            steps[-1][1].append(line)
        i += 1
    return steps


def norm(line: str) -> str:
    line = re.sub(r"\b\d+\.\d+\b", "N", line)  # compile seconds
    return " ".join(line.split())


def test_the_readme_keeps_the_setup_lines():
    text = README.read_text()
    assert "python3 -m pip install -e '.[dev]' torch==2.13.0 && kernelsmith doctor" in text
    assert "python3 -m pytest -q" in text
    assert len(text.splitlines()) <= 160


def test_quickstart_output_matches_the_readme(tmp_path):
    steps = quickstart()
    assert [c.split()[:2] for c, _ in steps] == [["kernelsmith", "optimize"], ["kernelsmith", "bench"]]
    env = dict(os.environ, KERNELSMITH_HOME=str(tmp_path / "home"), KERNELSMITH_SANDBOX="process", COLUMNS="88")
    def written() -> set[str]:  # what a run that is not dry would leave here
        return {p.name for p in ROOT.iterdir() if p.name.startswith("runs.db") or "_kernelsmith" in p.name}

    before = written()
    for cmd, expected in steps:
        argv = [sys.executable, "-m", "kernelsmith.cli", *shlex.split(cmd)[1:]]
        proc = subprocess.run(argv, capture_output=True, text=True, cwd=ROOT, env=env, timeout=600)
        assert proc.returncode in (0, 1), proc.stdout + proc.stderr
        got = {norm(line) for line in proc.stdout.splitlines()}
        missing = [line for line in expected if line.strip() and norm(line) not in got]
        assert missing == [], f"{cmd}\n--- printed:\n{proc.stdout}\n{proc.stderr}"
    assert written() == before  # a dry run writes nothing (no runs.db, no kernel, no report)
