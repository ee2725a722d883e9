"""The adversarial corpus on a real GPU: every hostile or faulty candidate gets its
verdict, the orchestrator stays up, and an honest candidate evaluated right after each
one is judged correct."""

from __future__ import annotations

import os
import re
import tempfile
import time
from pathlib import Path

import pytest

from kernelsmith.config import EvalConfig
from kernelsmith.evaluate import static
from kernelsmith.evaluate.evaluator import Evaluator
from kernelsmith.results import StaticResult
from kernelsmith.sandbox.local import LocalSandbox
from kernelsmith.task import Task
from tests.gpu.conftest import ROOT, load_manifest

HOSTILE = ROOT / "tests" / "fixtures" / "hostile"
ENTRIES = load_manifest(HOSTILE / "manifest.json") if (HOSTILE / "manifest.json").exists() else []
if os.environ.get("KS_HOSTILE_ONLY"):  # a regex over file names: re-run part of the corpus
    ENTRIES = [e for e in ENTRIES if re.search(os.environ["KS_HOSTILE_ONLY"], e["file"])]
RUNTIME = [e for e in ENTRIES if e.get("runtime")]


@pytest.fixture(scope="module")
def outcomes(tmp_path_factory):
    cache = Path(tempfile.mkdtemp(prefix="ks-hostile-", dir="/tmp"))  # jobs may run as nobody
    cache.chmod(0o755)
    cfg = EvalConfig(cache_dir=cache, use_cache=False, timing={"max_seconds": 0.3}, eval_timeout=20,
                     compile_timeout=100, compile_baseline=False)
    task = Task.load(HOSTILE / "task.py")
    good = (HOSTILE / "good_cupy.py").read_text()
    with Evaluator(cfg, sandbox=LocalSandbox()) as ev:
        ev.probe()
        # In the background: each evaluation waits only for its own build, so the CuPy entries
        # run while the load_inline builds and the compile hang (100 s) proceed.
        ev.precompile([(task, good)] + [(task, (HOSTILE / e["file"]).read_text()) for e in ENTRIES], wait=False)
        out = {}
        t0 = time.perf_counter()
        for e in ENTRIES:
            bad = ev.evaluate(task, (HOSTILE / e["file"]).read_text())
            after = ev.evaluate(task, good)
            out[e["file"]] = (bad, after)
            print(f"{time.perf_counter() - t0:6.1f}s VERDICT {e['file']:32s} expect={e['expect']:14s} got={bad.verdict.value}/{bad.error.value} "
                  f"next={after.verdict.value} | {bad.message[:150]!r}", flush=True)
        print(f"corpus: {len(ENTRIES)} entries, each followed by the honest candidate, in "
              f"{time.perf_counter() - t0:.0f} s", flush=True)
        # The runtime alone: entries the static screen would stop anyway, evaluated as if it
        # had let them through (their manifest `runtime` says what the harness must give).
        with pytest.MonkeyPatch.context() as mp:
            mp.setattr(static, "screen", lambda code, task_source=None: StaticResult(True, 0.0))
            for e in RUNTIME:
                bad = ev.evaluate(task, (HOSTILE / e["file"]).read_text())
                after = ev.evaluate(task, good)
                out["runtime:" + e["file"]] = (bad, after)
                print(f"{time.perf_counter() - t0:6.1f}s RUNTIME {e['file']:32s} expect={e['runtime']['expect']:14s} "
                      f"got={bad.verdict.value}/{bad.error.value} next={after.verdict.value} | {bad.message[:150]!r}",
                      flush=True)
    return out


@pytest.mark.gpu
@pytest.mark.parametrize("entry", RUNTIME, ids=[e["file"] for e in RUNTIME])
def test_hostile_runtime_verdict(outcomes, entry):
    """With the static screen out of the way, the runtime checks catch the entry."""
    bad, after = outcomes["runtime:" + entry["file"]]
    want = entry["runtime"]
    detail = f"{bad.verdict.value}/{bad.error.value}: {bad.message[:300]}"
    assert bad.verdict.value in want.get("accept", [want["expect"]]), detail
    assert bad.error.value in want["errors"], detail
    assert after.verdict.value == "correct", f"the honest candidate after it: {after.verdict.value}: {after.message}"


@pytest.mark.gpu
@pytest.mark.parametrize("entry", ENTRIES, ids=[e["file"] for e in ENTRIES])
def test_hostile_verdict(outcomes, entry):
    bad, after = outcomes[entry["file"]]
    detail = f"{bad.verdict.value}/{bad.error.value}: {bad.message[:300]}"
    # `accept` lists the verdicts that are still defensible (see the manifest's notes)
    assert bad.verdict.value in entry.get("accept", [entry["expect"]]), detail
    if bad.verdict.value != "correct":
        assert bad.error.value in entry["errors"], detail
        assert bad.message, "a failing verdict must say why"
    assert after.verdict.value == "correct", f"the honest candidate after it: {after.verdict.value}: {after.message}"
