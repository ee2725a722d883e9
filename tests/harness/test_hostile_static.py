"""The hostile corpus's manifest against the static screen, on the CPU.

The manifest says what a correct evaluator gives each entry (tests/fixtures/hostile/
README.md). What it implies about the screen is checked here, without a GPU:
- an entry whose verdict is `rejected` with `static_rule` among its errors must be
  rejected by the screen (the GPU run would otherwise see a runtime verdict);
- where the screen stops an entry, its verdict must be one the manifest accepts; so an
  entry for which a screen rejection is not acceptable (`rejected` not in `accept`, or
  `static_rule` not in `errors`) must pass the screen, or its runtime verdict is never
  reached;
- an entry with a `runtime` verdict is one the screen stops (the GPU test re-evaluates
  it with the screen disabled, so the runtime defence is shown on its own).
An entry with a `known_gap` is one the screen misses although it should catch it: its
verdict records what the evaluator really gives today (the runtime's, or `correct`),
and test_known_gaps_are_still_gaps fails once the screen catches it, so that the entry
then gets its static verdict and loses the `known_gap` line.
The manifest's own shape is checked too: fields, values, files, unique names.
"""

from __future__ import annotations

import ast
import json
import re
from pathlib import Path

import pytest

from kernelsmith.evaluate.static import screen
from kernelsmith.results import ErrorClass, Verdict

HOSTILE = Path(__file__).resolve().parents[1] / "fixtures" / "hostile"
MANIFEST = json.loads((HOSTILE / "manifest.json").read_text())
TASK = (HOSTILE / "task.py").read_text()

REQUIRED = ("file", "kind", "class", "expect", "errors", "why", "accept", "backend")
OPTIONAL = ("note", "runtime", "probe", "known_gap")
KINDS = {"exploit", "fault", "control"}
BACKENDS = {"cupy", "load_inline", "none"}
PROBES = {"must_not_exist_on_host", "env", "listen", "expect_connections", "no_leftover_processes",
          "gpu_memory_released"}
VERDICTS = {v.value for v in Verdict}
ERRORS = {e.value for e in ErrorClass}
FIRST_NEW = 85  # entries from here on (issue 13's classes) follow the stricter conventions below


def _number(name: str) -> int | None:
    m = re.match(r"(\d+)", name)
    return int(m.group(1)) if m else None


def _ids(entries):
    return [e["file"] for e in entries]


def must_be_rejected(e: dict) -> bool:
    return e["expect"] == "rejected" and "static_rule" in e["errors"]


# -- the manifest's shape ---------------------------------------------------------------
def test_manifest_names_are_unique_and_every_file_is_listed():
    names = [e["file"] for e in MANIFEST]
    assert len(names) == len(set(names)), sorted(n for n in names if names.count(n) > 1)
    on_disk = {p.name for p in HOSTILE.glob("*.py")} - {"task.py"}
    assert on_disk == set(names), {"unlisted": sorted(on_disk - set(names)), "missing": sorted(set(names) - on_disk)}
    classes = [(e["kind"], e["class"]) for e in MANIFEST if _number(e["file"]) and _number(e["file"]) >= FIRST_NEW]
    assert classes, "no entries numbered 85 or more"


@pytest.mark.parametrize("entry", MANIFEST, ids=_ids(MANIFEST))
def test_manifest_entry_is_well_formed(entry):
    missing = [k for k in REQUIRED if k not in entry]
    assert not missing, missing
    assert not set(entry) - set(REQUIRED) - set(OPTIONAL), set(entry) - set(REQUIRED) - set(OPTIONAL)
    assert entry["kind"] in KINDS and entry["backend"] in BACKENDS
    assert entry["expect"] in VERDICTS and set(entry["accept"]) <= VERDICTS and entry["expect"] in entry["accept"]
    assert set(entry["errors"]) <= ERRORS, set(entry["errors"]) - ERRORS
    assert (entry["expect"] == "correct") == (entry["errors"] == []) or entry["kind"] == "exploit"
    assert isinstance(entry["why"], str) and entry["why"].strip()
    rt = entry.get("runtime")
    if rt is not None:
        assert set(rt) == {"expect", "errors", "accept"}, rt
        assert rt["expect"] in VERDICTS and set(rt["accept"]) <= VERDICTS and rt["expect"] in rt["accept"]
        assert set(rt["errors"]) <= ERRORS and "static_rule" not in rt["errors"], rt
        assert rt["accept"] == ["correct"] or rt["errors"], "a failing runtime verdict needs its errors"
    probe = entry.get("probe")
    if probe is not None:
        assert probe and set(probe) <= PROBES, set(probe) - PROBES
        assert all(isinstance(p, str) for p in probe.get("must_not_exist_on_host", []))
        assert all(isinstance(k, str) and isinstance(v, str) and v for k, v in (probe.get("env") or {}).items())
        assert isinstance(probe.get("no_leftover_processes", True), (bool, str))
    if "known_gap" in entry:
        assert isinstance(entry["known_gap"], str) and entry["known_gap"].strip()


@pytest.mark.parametrize("entry", MANIFEST, ids=_ids(MANIFEST))
def test_entry_parses(entry):
    ast.parse((HOSTILE / entry["file"]).read_text())


NEW = [e for e in MANIFEST if (_number(e["file"]) or 0) >= FIRST_NEW]


@pytest.mark.parametrize("entry", NEW, ids=_ids(NEW))
def test_new_entry_conventions(entry):
    """85 on: a CuPy candidate with its own RawKernel, a docstring saying the trick, and a
    runtime verdict wherever the screen is meant to stop it."""
    src = (HOSTILE / entry["file"]).read_text()
    tree = ast.parse(src)
    assert entry["kind"] == "exploit" and entry["backend"] == "cupy"
    assert ast.get_docstring(tree), "say the trick in the module docstring"
    assert "cp.RawKernel(" in src and "__global__" in src and "class ModelNew" in src
    if must_be_rejected(entry) and "known_gap" not in entry:
        assert "runtime" in entry or set(entry["errors"]) - {"static_rule"}, \
            "an entry the screen stops needs a `runtime` verdict, so the runtime defence is exercised too"


# -- the manifest against the screen ------------------------------------------------------
def _screen(entry: dict):
    return screen((HOSTILE / entry["file"]).read_text(), TASK)


REJECTED = [e for e in MANIFEST if must_be_rejected(e) or e.get("runtime")]


@pytest.mark.parametrize("entry", REJECTED, ids=_ids(REJECTED))
def test_screen_rejects(entry):
    r = _screen(entry)
    assert not r.ok and r.error is ErrorClass.STATIC_RULE, (r.error, r.message)


@pytest.mark.parametrize("entry", MANIFEST, ids=_ids(MANIFEST))
def test_screen_verdict_is_accepted(entry):
    """Where the screen stops an entry, that verdict (rejected / static_rule, format,
    syntax) must be one the manifest accepts; so an entry whose verdict must come from
    the runtime (`static_rule` not in its errors, or `rejected` not accepted) passes it."""
    r = _screen(entry)
    if not r.ok:
        assert "rejected" in entry["accept"] and r.error.value in entry["errors"], (r.error, r.message)


GAPS = [e for e in MANIFEST if e.get("known_gap", "").startswith("static")]


@pytest.mark.parametrize("entry", GAPS, ids=_ids(GAPS))
def test_known_gaps_are_still_gaps(entry):
    """A `known_gap` that the screen now closes must be removed from the manifest, and the
    entry given its static verdict (rejected, `static_rule` among its errors)."""
    assert _screen(entry).ok, "the screen catches this entry now: give it its static verdict, drop `known_gap`"
