"""How a run's evaluations were spread over physical GPUs (by GPU UUID), with the wall
time each GPU spent: shows that a multi-GPU run really used every GPU.
Usage: python dev/runs/gpu_split.py DB_URL"""

from __future__ import annotations

import collections
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from kernelsmith.store.runs import RunStore  # noqa: E402


def main() -> None:
    store = RunStore(sys.argv[1])
    count: dict[str, int] = collections.Counter()
    busy: dict[str, float] = collections.defaultdict(float)
    for run in store.list_runs():
        for c in store.candidates(run.id):
            if c.result is None:
                continue
            uuid = c.result.system.gpu_uuid or "unknown"
            count[uuid] += 1
            busy[uuid] += sum(v for k, v in c.result.wall.items() if "." not in k and k != "compile")
    for uuid, n in sorted(count.items()):
        print(f"GPU {uuid}: {n} evaluations, {busy[uuid]:.1f} s of GPU-side wall time")


if __name__ == "__main__":
    main()
