"""Each kernel language's AXPY fixtures through the real evaluator on a GPU: the verdict
in tests/fixtures/languages/manifest.json (Triton, Numba and PyCUDA kernels count as the
candidate's own work in the profiled calls)."""

from __future__ import annotations

import importlib.util
import json
import tempfile
from pathlib import Path

import pytest

from kernelsmith.config import EvalConfig
from kernelsmith.evaluate.evaluator import Evaluator
from kernelsmith.sandbox.local import LocalSandbox
from kernelsmith.task import Task
from tests.gpu.conftest import ROOT

LANG = ROOT / "tests" / "fixtures" / "languages"
MANIFEST = json.loads((LANG / "manifest.json").read_text())


@pytest.fixture(scope="module")
def results():
    cache = Path(tempfile.mkdtemp(prefix="ks-lang-", dir="/tmp"))
    cache.chmod(0o755)
    cfg = EvalConfig(cache_dir=cache, use_cache=False, timing={"max_seconds": 0.5}, compile_baseline=False)
    task = Task.load(ROOT / MANIFEST["task"])
    with Evaluator(cfg, sandbox=LocalSandbox()) as ev:
        out = {name: ev.evaluate(task, (LANG / name).read_text()) for name in MANIFEST["solutions"]}
    for name, r in out.items():
        speed = r.timing.speedup_eager if getattr(r, "timing", None) else None
        print(f"LANG {name:28s} {r.verdict.value}/{r.error.value} speedup={speed} | {r.message[:160]!r}", flush=True)
    return out


@pytest.mark.gpu
@pytest.mark.parametrize("name", list(MANIFEST["solutions"]))
def test_language_fixture_verdict(results, name):
    if "pycuda" in name and importlib.util.find_spec("pycuda") is None:
        pytest.skip("PyCUDA is not installed here (build its wheel: scripts/build_pycuda_wheel.sh; docs/languages.md)")
    r = results[name]
    assert r.verdict.value == MANIFEST["solutions"][name], f"{r.verdict.value}/{r.error.value}: {r.message[:400]}"
