"""The task suite's fixture solutions as a `bench --generations` file, and the check of a
finished run against the verdicts the manifest expects.

    python benchmarks/fixture_generations.py write OUT.jsonl [--only hpc_]   # --only: stems with that prefix
    kernelsmith bench --generations OUT.jsonl --suite tasks/ --label fixtures [--gpus 0,1]
    python benchmarks/fixture_generations.py check OUT.jsonl RUN_ID [--db URL]

`check` prints one line per fixture and exits 1 when any verdict differs.
"""

from __future__ import annotations

import hashlib
import json
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
SOL = ROOT / "tests" / "fixtures" / "solutions"


def rows(prefix: str = "") -> list[dict]:
    """One row per fixture of the tasks whose stem starts with `prefix` ("hpc_": the HPC suite)."""
    manifest = json.loads((SOL / "manifest.json").read_text())
    out = []
    for stem, entry in manifest.items():
        if not stem.startswith(prefix):
            continue
        m = re.match(r"(?:level(\d+)|hpc)_(\d+)_(.+)", stem)  # hpc_NNN_name: the level is in the task path
        level = int(m.group(1) or re.search(r"/level(\d+)/", entry["task"]).group(1))
        pid, name = int(m.group(2)), m.group(3)
        for fname, expect in entry["solutions"].items():
            out.append({"level": level, "problem_id": pid, "name": name, "task_path": str(ROOT / entry["task"]),
                        "code": (SOL / stem / fname).read_text(), "fixture": f"{stem}/{fname}", "expect": expect})
    return out


def check(jsonl: Path, run_id: str, db: str | None) -> int:
    from kernelsmith.store.runs import RunStore

    expected = {}
    for line in jsonl.read_text().splitlines():
        r = json.loads(line)
        expected[hashlib.sha256(r["code"].encode()).hexdigest()] = (r["fixture"], r["expect"])
    store = RunStore(db)
    bad = 0
    seen = set()
    for c in store.candidates(run_id):
        key = hashlib.sha256(c.code.encode()).hexdigest()
        if key not in expected:
            continue
        fixture, want = expected[key]
        seen.add(key)
        got = c.result.verdict.value if c.result else "not evaluated"
        ok = got == want
        bad += not ok
        sp = f"{c.result.speedup:.3f}x" if c.result is not None and c.result.correct else ""
        msg = "" if ok else f"  <- expected {want}: {(c.result.message if c.result else '')[:150]}"
        print(f"{'ok ' if ok else 'BAD'} {fixture:55s} {got:14s} {sp:>8s}{msg}")
    missing = [f for k, (f, _) in expected.items() if k not in seen]
    for f in missing:
        print(f"BAD {f:55s} missing from the run")
    print(f"{len(expected) - bad - len(missing)} of {len(expected)} fixtures got their expected verdict")
    return 1 if bad or missing else 0


def main() -> None:
    if len(sys.argv) >= 3 and sys.argv[1] == "write":
        prefix = sys.argv[sys.argv.index("--only") + 1] if "--only" in sys.argv else ""
        out = rows(prefix)
        Path(sys.argv[2]).write_text("".join(json.dumps(r) + "\n" for r in out))
        print(f"wrote {len(out)} rows to {sys.argv[2]}")
    elif len(sys.argv) >= 4 and sys.argv[1] == "check":
        db = sys.argv[sys.argv.index("--db") + 1] if "--db" in sys.argv else None
        sys.exit(check(Path(sys.argv[2]), sys.argv[3], db))
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main()
