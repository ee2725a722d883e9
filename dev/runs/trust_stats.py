"""The trust diagnostics of a run's evaluations, as measured: how the reference's time
moved once the candidate was loaded (reference_drift), how profiled timed calls compared
with unprofiled ones (profiled_ratio), and what the interpreter verification cost.
Used on the GPU machine to choose and check the thresholds in kernelsmith/harness/timed.py.

    python dev/runs/trust_stats.py DB_URL [RUN_ID]
"""

from __future__ import annotations

import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))


def _q(xs: list[float]) -> str:
    if not xs:
        return "none"
    s = sorted(xs)
    pick = lambda f: s[min(len(s) - 1, int(f * (len(s) - 1) + 0.5))]  # noqa: E731
    return f"n={len(s)} min={s[0]:.3f} p10={pick(.1):.3f} median={statistics.median(s):.3f} p90={pick(.9):.3f} max={s[-1]:.3f}"


def main() -> None:
    from kernelsmith.store.runs import RunStore

    store = RunStore(sys.argv[1])
    run_id = sys.argv[2] if len(sys.argv) > 2 else store.list_runs()[0].id
    drift, prof, verify, surf = [], [], [], []
    stages: dict[str, list[float]] = {}
    for c in store.candidates(run_id):
        r = c.result
        if r is None:
            continue
        if r.timing and r.timing.reference_drift:
            drift.append(r.timing.reference_drift)
        if r.timing and r.timing.profiled_ratio:
            prof.append(r.timing.profiled_ratio)
        w = r.wall or {}
        if "verify" in w:
            verify.append(w["verify"] * 1e3)
        if "load.surface" in w:
            surf.append(w["load.surface"] * 1e3)
        if r.verdict.value == "correct":
            for k, v in w.items():
                stages.setdefault(k, []).append(v * 1e3)
        if r.verdict.value in ("rejected",) and r.error.value in ("tampering", "reference_slowed", "phase_dependent"):
            print(f"trust rejection: {r.error.value}: {r.message[:300]}")
    print("reference drift (after load / before):", _q(drift))
    print("profiled / unprofiled timed calls:   ", _q(prof))
    print("deep verification ms per candidate:  ", _q(verify))
    print("surface rebase ms per candidate:     ", _q(surf))
    for k in sorted(stages):
        print(f"  wall {k:28s} ms: {_q(stages[k])}")


if __name__ == "__main__":
    main()
