"""A reproducibility bundle of a leaderboard: for each run and task, everything needed to
check or re-time its winning kernel.

    DIR/manifest.json                       index: runs, tasks, files, metrics, definitions
    DIR/leaderboard.json                    the full leaderboard (as ``--format json``)
    DIR/references/<hash>.py                each reference source, named by its task hash
    DIR/runs/<run>/<task>-<hash12>/
        kernel.py                           the winning kernel (absent: no correct kernel)
        timing.json                         raw samples (candidate, eager), medians, CIs, speedups
        baseline.json                       stored torch.compile / eager baselines for this task and GPU
        system.json                         hardware row + the result's system (driver, torch, CUDA, ...)
        result.json                         the winning evaluation's full EvalResult
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from kernelsmith.leaderboard.build import SCHEMA, Leaderboard
from kernelsmith.store import models as m


def _slug(s: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", s).strip("_")[:60] or "task"


def _dump(path: Path, data: Any) -> None:
    path.write_text(json.dumps(data, indent=2, sort_keys=True, default=str), encoding="utf-8")


def _hw_dict(h: m.Hardware | None) -> dict[str, Any] | None:
    if h is None:
        return None
    return {k: getattr(h, k) for k in ("id", "fingerprint", "gpu", "compute_capability", "driver", "torch", "cuda",
                                       "cupy", "python", "hostname")}


def write_bundle(lb: Leaderboard, store_or_url: Any, out_dir: str | Path) -> Path:
    """Write the bundle of ``lb`` (built from the same database) into ``out_dir``; returns
    the manifest's path."""
    from kernelsmith.leaderboard.export import render_json
    from kernelsmith.store.runs import RunStore

    store = store_or_url if isinstance(store_or_url, RunStore) else RunStore(store_or_url)
    out = Path(out_dir)
    (out / "references").mkdir(parents=True, exist_ok=True)
    (out / "leaderboard.json").write_text(render_json(lb), encoding="utf-8")
    manifest: dict[str, Any] = {"schema": SCHEMA + "/bundle", "generated_at": lb.generated_at, "db": lb.db,
                                "notes": lb.notes, "references": {}, "groups": []}
    try:
        with Session(store.engine) as s:
            for g in lb.groups:
                mg = {"name": g.name, "title": g.title, "set_id": g.set_id, "task_hashes": [t["hash"] for t in g.tasks],
                      "runs": []}
                for r in g.runs:
                    mr = {"rank": r.rank, "run_id": r.run_id, "model": r.model, "strategy": r.strategy,
                          "gpu": r.gpu, "label": r.label, "replayed": r.replayed, **r.summary.to_dict(),
                          "cost_usd": r.cost_usd, "wins_per_usd": r.wins_per_usd, "tasks_detail": []}
                    for o in r.outcomes:
                        mr["tasks_detail"].append(_task_files(s, out, r.run_id, o, manifest["references"]))
                    mg["runs"].append(mr)
                manifest["groups"].append(mg)
    finally:
        if store is not store_or_url:
            store.close()
    path = out / "manifest.json"
    _dump(path, manifest)
    return path


def _task_files(s: Session, out: Path, run_id: str, o: Any, refs: dict[str, Any]) -> dict[str, Any]:
    task = s.get(m.TaskRow, o.task_hash)
    ref_rel = f"references/{o.task_hash}.py"
    if o.task_hash not in refs and task is not None:
        (out / ref_rel).write_text(task.source, encoding="utf-8")
        refs[o.task_hash] = {"name": task.name, "level": task.level, "problem_id": task.problem_id,
                             "origin": task.origin, "file": ref_rel,
                             "source_sha256": hashlib.sha256(task.source.encode()).hexdigest()}
    entry: dict[str, Any] = {"task_hash": o.task_hash, "name": o.name, "level": o.level, "reference": ref_rel,
                             "correct": o.correct, "speedup_eager": o.speedup_eager,
                             "speedup_compile": o.speedup_compile, "candidates": o.candidates, "files": {}}
    if o.best_evaluation_id is None:
        entry["status"] = "no correct kernel"
        return entry
    d = out / "runs" / _slug(run_id) / f"{_slug(o.name)}-{o.task_hash[:12]}"
    d.mkdir(parents=True, exist_ok=True)
    ev = s.get(m.Evaluation, o.best_evaluation_id)
    cand = s.get(m.CandidateRow, o.best_candidate_id)
    res = dict(ev.result_json or {}) if ev is not None else {}
    files: dict[str, str] = {}
    if cand is not None:
        (d / "kernel.py").write_text(cand.code, encoding="utf-8")
        files["kernel"] = "kernel.py"
        entry["kernel_sha256"] = cand.code_hash
        entry["candidate_id"] = cand.id
    timing = res.get("timing") or {}
    _dump(d / "timing.json", {
        "candidate": timing.get("candidate"), "eager": timing.get("eager"),
        "candidate_samples_ms": (timing.get("candidate") or {}).get("samples_ms"),
        "eager_samples_ms": (timing.get("eager") or {}).get("samples_ms"),
        "compiled_ms": timing.get("compiled_ms"), "speedup_eager": timing.get("speedup_eager"),
        "speedup_eager_ci": timing.get("speedup_eager_ci"), "speedup_compile": timing.get("speedup_compile"),
        "bound": timing.get("bound")})
    files["timing"] = "timing.json"
    hw = s.get(m.Hardware, ev.hardware_id) if ev is not None and ev.hardware_id is not None else None
    base_q = select(m.Baseline).where(m.Baseline.task_hash == o.task_hash)
    if hw is not None:
        base_q = base_q.where(m.Baseline.hardware_id == hw.id)
    baselines = [{"hardware_id": b.hardware_id, "eager_ms": b.eager_ms, "compiled_ms": b.compiled_ms,
                  "ratio": b.ratio, "data": b.data_json} for b in s.scalars(base_q)]
    _dump(d / "baseline.json", {"from_evaluation": {"eager_ms": ev.eager_ms if ev else None,
                                                    "compiled_ms": ev.compiled_ms if ev else None},
                                "stored_baselines": baselines})
    files["baseline"] = "baseline.json"
    _dump(d / "system.json", {"hardware": _hw_dict(hw), "result_system": res.get("system")})
    files["system"] = "system.json"
    _dump(d / "result.json", res)
    files["result"] = "result.json"
    rel = d.relative_to(out).as_posix()
    entry["dir"] = rel
    entry["files"] = {k: f"{rel}/{v}" for k, v in files.items()}
    entry["evaluation_id"] = o.best_evaluation_id
    return entry
