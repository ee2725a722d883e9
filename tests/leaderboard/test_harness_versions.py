"""The leaderboard knows which harness version measured each run, and says so when the
runs it ranks were measured by different versions (timing changed between them)."""

from __future__ import annotations

import dataclasses

from kernelsmith.leaderboard import build
from kernelsmith.search.types import Candidate
from kernelsmith.store.runs import RunStore
from lb_helpers import H200, correct, task


def _run(store: RunStore, name: str, harness: str, speedup: float) -> str:
    t = task("relu")
    store.upsert_task(t, level=1, problem_id=1)
    rid = store.create_run("bench", name, "refine", {}, {})
    store.set_run_task(rid, t.hash, "done")
    cid = store.add_candidate(rid, t.hash, Candidate(code=f"# {name}\nclass ModelNew: pass\n"))
    store.add_evaluation(cid, correct(t, speedup, dataclasses.replace(H200, harness=harness)))
    return rid


def _notes(lb) -> list[str]:
    return [n for n in lb.notes if "harness versions" in n]


def test_runs_of_one_version_need_no_note(tmp_path):
    with RunStore(f"sqlite:///{tmp_path / 'runs.db'}") as store:
        _run(store, "a", "4", 1.5)
        _run(store, "b", "4", 2.0)
        lb = build(store)
    runs = {r.model: r for g in lb.groups for r in g.runs}
    assert runs["a"].to_dict()["harness"] == ["4"] and runs["b"].harness == ["4"]
    assert _notes(lb) == []


def test_mixed_versions_are_named_in_a_note(tmp_path):
    with RunStore(f"sqlite:///{tmp_path / 'runs.db'}") as store:
        _run(store, "old", "", 1.5)  # recorded before versions were kept
        _run(store, "new", "4", 2.0)
        lb = build(store)
    runs = {r.model: r for g in lb.groups for r in g.runs}
    assert runs["old"].harness == ["?"] and runs["new"].harness == ["4"]
    (note,) = _notes(lb)
    assert "harness versions 4, ?" in note and "compare speedups only within one version" in note


def test_only_the_evaluations_that_count_name_the_version(tmp_path):
    """A candidate re-evaluated after an upgrade: its latest evaluation is the one the
    leaderboard uses, so the older, unversioned one must not raise the mixed-versions note."""
    with RunStore(f"sqlite:///{tmp_path / 'runs.db'}") as store:
        rid = _run(store, "a", "", 1.5)
        (cand,) = store.candidates(rid)
        t = task("relu")
        store.add_evaluation(cand.id, correct(t, 1.7, dataclasses.replace(H200, harness="4")))
        _run(store, "b", "4", 2.0)
        lb = build(store)
    runs = {r.model: r for g in lb.groups for r in g.runs}
    assert runs["a"].harness == ["4"] and runs["a"].outcomes[0].speedup_eager == 1.7
    assert _notes(lb) == []
