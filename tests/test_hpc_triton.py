"""The HPC suite's Triton candidates (benchmarks/hpc/triton/) against the task references, run
by Triton's interpreter on the CPU (TRITON_INTERPRET=1, in a subprocess so the interpreter
mode cannot leak into other tests): skipped where Triton is not installed. On the GPU the same
files run through `bench --generations benchmarks/hpc/generations.jsonl`."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SIZES = {"001_axpy": {"N": 5003}, "002_gemv": {"M": 70, "N": 601}, "003_gemm": {"M": 70, "N": 45, "K": 2050},
         "004_spmv_csr": {"ROWS": 3000, "LONG_NNZ": 700}, "005_jacobi2d": {"HEIGHT": 70, "WIDTH": 101},
         "006_cg": {"SIZE": 512}}

CHILD = r"""
import importlib.util, sys, torch
sys.path.insert(0, sys.argv[1] + "/tests")
from test_hpc_tasks import _excess, _task
name, sizes = sys.argv[2], eval(sys.argv[3])
m, model, inputs = _task(name, **sizes)
spec = importlib.util.spec_from_file_location("sol", f"{sys.argv[1]}/benchmarks/hpc/triton/{name}.py")
sol = importlib.util.module_from_spec(spec)
spec.loader.exec_module(sol)
new = sol.ModelNew(*m.get_init_inputs())
with torch.no_grad():
    ref = model(*[x.double() if x.is_floating_point() else x for x in inputs])
    out = new(*[x.clone() for x in inputs])
assert out.shape == ref.shape and out.dtype == torch.float32, (out.shape, out.dtype)
print("excess", _excess(out, ref))
"""


@pytest.mark.skipif(importlib.util.find_spec("triton") is None, reason="Triton is not installed")
@pytest.mark.parametrize("name", sorted(SIZES))
def test_triton_candidate_matches_the_reference(name):
    env = {**os.environ, "TRITON_INTERPRET": "1"}
    res = subprocess.run([sys.executable, "-c", CHILD, str(ROOT), name, repr(SIZES[name])], env=env,
                         capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr[-3000:]
    excess = float(res.stdout.split("excess")[-1])
    assert excess < 0.5, f"{name}: {excess} of the harness's fp32 tolerance"
