"""The HPC suite's recorded generations: every CuPy fixture (tests/fixtures/solutions/hpc_*,
correct and wrong), every CUDA C++ (load_inline) candidate (benchmarks/hpc/cuda/) and every
Triton candidate (benchmarks/hpc/triton/), one JSONL row each, with the verdict it must get. Rows name their task by a path relative to the repository root,
so run the bench from there:

    python benchmarks/hpc/make_generations.py            # (re)writes benchmarks/hpc/generations.jsonl
    python benchmarks/hpc/make_generations.py --check    # exit 1 if the file is stale
    kernelsmith bench --generations benchmarks/hpc/generations.jsonl --suite tasks/hpc --label hpc-recorded
    python benchmarks/fixture_generations.py check benchmarks/hpc/generations.jsonl RUN_ID

Triton rows ("needs": "triton") are judged only where the harness runs Triton candidates
(the languages work of issue 16); before that they are rejected by the static screen.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SOL = ROOT / "tests" / "fixtures" / "solutions"
HERE = Path(__file__).resolve().parent
OUT = Path(__file__).resolve().parent / "generations.jsonl"


def _row(task: Path, code_path: Path, language: str, expect: str, fixture: str, needs: str = "") -> dict:
    m = re.match(r"(\d+)_(.+)\.py$", task.name)
    level = int(re.search(r"level(\d+)", task.parent.name).group(1))
    row = {"level": level, "problem_id": int(m.group(1)), "name": m.group(2),
           "task_path": task.relative_to(ROOT).as_posix(), "language": language, "code": code_path.read_text(),
           "fixture": fixture, "expect": expect}
    if needs:
        row["needs"] = needs
    return row


def rows() -> list[dict]:
    manifest = json.loads((SOL / "manifest.json").read_text())
    out = []
    for stem, entry in manifest.items():
        if stem.startswith("hpc_"):
            for fname, expect in entry["solutions"].items():
                out.append(_row(ROOT / entry["task"], SOL / stem / fname, "cupy", expect, f"{stem}/{fname}"))
    for lang, needs in (("cuda", ""), ("triton", "triton")):
        for f in sorted((HERE / lang).glob("[0-9]*.py")):
            task = ROOT / "tasks" / "hpc" / "level1" / f.name
            out.append(_row(task, f, lang, "correct", f"benchmarks/hpc/{lang}/{f.name}", needs=needs))
    return out


def text() -> str:
    return "".join(json.dumps(r, sort_keys=True) + "\n" for r in rows())


def main() -> None:
    if "--check" in sys.argv:
        if not OUT.is_file() or OUT.read_text() != text():
            sys.exit(f"{OUT} is stale: run python benchmarks/hpc/make_generations.py")
        print(f"{OUT} is up to date")
        return
    OUT.write_text(text())
    print(f"wrote {len(rows())} rows to {OUT}")


if __name__ == "__main__":
    main()
