"""Export: the installed winners as a package that pip installs into another environment
(a throwaway --target here), imports without kernelsmith, registers its ops, and whose own
tests re-check the kernels on a GPU (they skip cleanly on this CPU)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import torch

from kernelsmith.model.export import export_package
from kernelsmith.model.pipeline import optimize_model, read_generations
from kernelsmith.model.search import SearchSettings, Searcher
from kernelsmith.search.base import Budget
from kernelsmith.store.runs import RunStore
from tests.model.common import cpu_kernel, evaluator, fake_timer, tiny


@pytest.fixture
def exported(tmp_path, on_cpu):
    m, xs = tiny()
    gen = tmp_path / "gen.jsonl"
    gen.write_text(json.dumps({"key": "ln+act+mul", "code": cpu_kernel("fast15")}) + "\n")
    settings = SearchSettings(budget=Budget(max_candidates=2), sanitize=False, confirm=False, options={"chains": 1})
    with Searcher(settings, evaluator=evaluator(), store=RunStore(f"sqlite:///{tmp_path / 'runs.db'}")) as s:
        report, opt, winners = optimize_model(m, xs, "tiny", s, tmp_path / "out", top=2,
                                              replies_for=read_generations(gen), replies_name=str(gen),
                                              timer=fake_timer)
    pkg = export_package(report, winners, opt, tmp_path / "pkg", "ks_tiny_kernels")
    return pkg, report, m, xs


def test_package_layout_and_manifest(exported):
    pkg, report, _, _ = exported
    src = pkg / "src" / "ks_tiny_kernels"
    manifest = json.loads((src / "manifest.json").read_text())
    assert manifest["namespace"] == report.namespace
    (op,) = manifest["ops"]
    assert op["name"] == "ln_act_mul" and op["key"] == "ln+act+mul" and op["inputs"] == [[[4, 8, 32], "float32"]]
    assert op["params"] == [[[32], "float32"], [[32], "float32"]] and op["atol"] == 1e-4
    assert (src / "kernels" / "ln_act_mul.py").read_text().count("class ModelNew") == 1
    weights = list((src / "references").glob("ks_weights_*.pt"))
    assert len(weights) == 1 and weights[0].name in (src / "references" / "ln_act_mul.py").read_text()
    runtime = (src / "_runtime.py").read_text()
    assert "import kernelsmith" not in runtime and "from kernelsmith" not in runtime


def test_pip_install_into_another_environment_and_recheck(exported, tmp_path):
    pkg, report, m, xs = exported
    target = tmp_path / "site"
    r = subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation",
                        "--no-index", "--target", str(target), str(pkg)], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    # a fresh interpreter that sees the package but not kernelsmith's checkout
    env = dict(os.environ, PYTHONPATH=str(target))
    code = ("import sys, torch, ks_tiny_kernels as k\n"
            "assert not any(n.startswith('kernelsmith') for n in sys.modules), 'imports kernelsmith'\n"
            "print(k.NAMESPACE, sorted(k.OPS), hasattr(getattr(torch.ops, k.NAMESPACE), 'ln_act_mul'))\n")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=tmp_path,
                       timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    assert r.stdout.split() == [report.namespace, "['ln_act_mul']", "True"]
    r = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-rs", str(pkg / "tests")],
                       capture_output=True, text=True, env=env, cwd=tmp_path, timeout=300)
    assert r.returncode == 0, r.stdout[-2000:]
    assert "1 passed, 1 skipped" in r.stdout and "re-checking a kernel needs a CUDA GPU" in r.stdout


def test_exported_forward_runs_the_ops_in_the_users_module(exported, tmp_path, monkeypatch):
    """The package's optimize(module) wraps the user's own module instance (CPU stand-in kernel)."""
    pkg, report, m, xs = exported
    monkeypatch.syspath_prepend(str(pkg / "src"))
    import warnings

    import ks_tiny_kernels as k

    monkeypatch.setattr(k._runtime, "DEVICE_TYPE", "cpu")  # the package's own copy of the runtime
    fast = k.optimize(m)
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("error")  # no fallback to the original module
        torch.testing.assert_close(fast(*xs), m(*xs))
    assert k.KERNELS["ln_act_mul"]._cache, "the op's kernel was not called"
    assert "ks_tiny_kernels" in repr(fast)
