"""The HPC suite's inputs make wrong kernels fail and leave right ones room (CPU).

For each task: the fp32 reference stays well inside the harness's fp32 tolerance of the same
reference in fp64 (summation order and rounding cannot fail a correct kernel), and a torch
re-enactment of each wrong fixture's bug (tests/fixtures/solutions/hpc_*/wrong_*.py) is
outside it (the checker catches the bug). Sizes are the CPU sizes of test_task_suite, except
where the bug needs the full-size property (odd lengths, K not a multiple of the tile).
"""
from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
HPC = REPO / "tasks" / "hpc" / "level1"
ATOL = RTOL = 1e-4  # the harness's fp32 default (kernelsmith.harness.check.DEFAULT_TOL)


def _task(name: str, **sizes):
    spec = importlib.util.spec_from_file_location(f"_ks_hpc_{name}", HPC / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    for k, v in sizes.items():
        assert hasattr(module, k)
        setattr(module, k, v)
    torch.manual_seed(0)
    return module, module.Model(*module.get_init_inputs()), module.get_inputs()


def _excess(out: torch.Tensor, ref: torch.Tensor) -> float:
    """max |out - ref| / (atol + rtol |ref|): <= 1 passes the harness's check, NaN fails."""
    if torch.isnan(out).any():
        return float("inf")
    return ((out.double() - ref.double()).abs() / (ATOL + RTOL * ref.double().abs())).max().item()


def _f64(xs):
    return [x.double() if x.is_floating_point() else x for x in xs]


def _check(model, inputs, wrong: torch.Tensor):
    with torch.no_grad():
        ref32 = model(*inputs)
        ref64 = model(*_f64(inputs))
    assert _excess(ref32, ref64) < 0.1, "fp32 rounding alone comes near the tolerance"
    assert _excess(wrong, ref64) > 10, "the bug stays inside the tolerance: the inputs do not catch it"


def test_axpy_tail_not_written():
    m, model, (x, y) = _task("001_axpy", N=1000 + 3)
    wrong = torch.full_like(x, float("nan"))  # the harness poisons unwritten output with NaN
    n = (x.numel() // 256) * 256
    wrong[:n] = model.a * x[:n] + y[:n]
    _check(model, [x, y], wrong)


def test_gemv_without_beta():
    m, model, (A, x, y) = _task("002_gemv", M=70, N=301)
    _check(model, [A, x, y], model.alpha * (A @ x))


def test_gemm_last_partial_k_tile_dropped():
    m, model, (A, B, C) = _task("003_gemm", M=37, N=29, K=2050)  # the full-size K: 2050 % 16 == 2
    k = (A.shape[1] // 16) * 16
    _check(model, [A, B, C], model.alpha * (A[:, :k] @ B[:k]) + model.beta * C)


def _csr_rows(crow):
    counts = (crow[1:] - crow[:-1]).long()
    return torch.repeat_interleave(torch.arange(crow.numel() - 1), counts)


def test_spmv_inputs_have_the_hard_cases():
    m, model, (crow, col, values, x) = _task("004_spmv_csr", ROWS=3000, LONG_NNZ=700)
    lengths = crow[1:] - crow[:-1]
    assert lengths[0] == 0 and lengths[-1] == 0 and (lengths == 0).sum() > 100
    assert lengths.max() >= 700 and crow[-1] == values.numel() == col.numel()
    rows = _csr_rows(crow)
    assert bool(((rows[1:] > rows[:-1]) | (col[1:] >= col[:-1])).all()), "columns sorted within rows"


def test_spmv_summation_order_stays_inside_the_tolerance_at_full_size():
    """The full-size matrix (rows of up to 8192 terms), summed forward and backward within
    each row in fp32 (the GPU reference's index_add_ adds in any order): both far inside the
    tolerance of the fp64 sum. With randn data a correct kernel failed here on an H200."""
    m, model, (crow, col, values, x) = _task("004_spmv_csr")
    rows = _csr_rows(crow)
    terms = values * x[col.long()]
    forward = torch.zeros(x.numel()).index_add_(0, rows, terms)
    backward = torch.zeros(x.numel()).index_add_(0, rows.flip(0), terms.flip(0))
    exact = torch.zeros(x.numel(), dtype=torch.float64).index_add_(0, rows, values.double() * x.double()[col.long()])
    assert _excess(forward, exact) < 0.1 and _excess(backward, exact) < 0.1


def test_spmv_lower_bound_row_search_misplaces_entries_after_empty_rows():
    m, model, (crow, col, values, x) = _task("004_spmv_csr", ROWS=3000, LONG_NNZ=700)
    k = torch.arange(values.numel(), dtype=crow.dtype)
    lo = torch.searchsorted(crow, k, right=False)  # the wrong kernel's lower_bound
    row = torch.where(crow[lo] > k, lo - 1, lo)
    wrong = torch.zeros(x.numel()).index_add_(0, row, values * x[col.long()])
    _check(model, [crow, col, values, x], wrong)


def test_spmv_last_entry_of_each_row_dropped():
    m, model, (crow, col, values, x) = _task("004_spmv_csr", ROWS=3000, LONG_NNZ=700)
    keep = torch.ones(values.numel(), dtype=torch.bool)
    ends = crow[1:].long()
    keep[(ends - 1)[ends > crow[:-1].long()]] = False
    _check(model, [crow, col, values, x], model(crow, col, values * keep, x))


def test_jacobi_boundary_zeroed():
    m, model, (u0, f) = _task("005_jacobi2d", HEIGHT=40, WIDTH=37)
    u = u0
    for _ in range(model.sweeps):
        nxt = torch.zeros_like(u)
        nxt[1:-1, 1:-1] = 0.25 * (u[:-2, 1:-1] + u[2:, 1:-1] + u[1:-1, :-2] + u[1:-1, 2:] - f[1:-1, 1:-1])
        u = nxt
    _check(model, [u0, f], u)


def _cg(A, b, iters, stale_beta=False):
    x, r = torch.zeros_like(b), b.clone()
    p, rr0 = r.clone(), torch.dot(r, r)
    rr = rr0
    for _ in range(iters):
        Ap = A @ p
        alpha = rr / torch.dot(p, Ap)
        x, r = x + alpha * p, r - alpha * Ap
        rr_new = torch.dot(r, r)
        p = r + (rr_new / (rr0 if stale_beta else rr)) * p
        rr = rr_new
    return x


@pytest.mark.parametrize("size", [256, 1024])
def test_cg_stale_beta_and_iteration_count(size):
    m, model, (A, b) = _task("006_cg", SIZE=size)
    assert torch.linalg.eigvalsh(A.double()).min() > 0.005, "A must be SPD and not near-singular"
    _check(model, [A, b], _cg(A, b, model.iters, stale_beta=True))
    _check(model, [A, b], _cg(A, b, model.iters - 1))  # one iteration short: not converged yet
    assert _excess(_cg(A, b, model.iters), model(A.double(), b.double())) < 0.1  # the re-enactment is faithful


def test_fixture_generations_covers_the_hpc_fixtures():
    import sys

    sys.path.insert(0, str(REPO / "benchmarks"))
    try:
        import fixture_generations as fg
    finally:
        sys.path.pop(0)
    rows = fg.rows("hpc_")
    assert len(rows) == 13 and {r["level"] for r in rows} == {1}
    assert {r["problem_id"] for r in rows} == set(range(1, 7))
    assert {r["fixture"]: r["expect"] for r in rows}["hpc_004_spmv_csr/wrong_empty_rows.py"] == "incorrect"
    assert sum(r["expect"] == "correct" for r in rows) == 6
    assert len(fg.rows()) > len(rows)  # the other suites' stems (levelN_...) still parse


def test_recorded_generations_file_is_current_and_resolves():
    import json
    import subprocess
    import sys

    res = subprocess.run([sys.executable, str(REPO / "benchmarks" / "hpc" / "make_generations.py"), "--check"],
                         capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    rows = [json.loads(line) for line in (REPO / "benchmarks" / "hpc" / "generations.jsonl").read_text().splitlines()]
    assert {r["language"] for r in rows} == {"cupy", "cuda", "triton"}
    assert sum(r["language"] == "triton" for r in rows) == sum(r["language"] == "cuda" for r in rows) == 6
    assert all(r.get("needs") == "triton" for r in rows if r["language"] == "triton")
    from kernelsmith.evaluate import static
    from kernelsmith.languages import detect

    for r in rows:  # the language each row claims is the one its code imports; non-Triton rows pass the screen
        assert detect(r["code"]) == r["language"], r["fixture"]
        if r["language"] != "triton":
            assert static.screen(r["code"], (REPO / r["task_path"]).read_text()).ok, r["fixture"]
    from kernelsmith.task import Task

    for r in rows:  # every row's task resolves from the repository root, at the stated level / id
        t = Task.load(REPO / r["task_path"])
        assert t.name == f"{r['problem_id']:03d}_{r['name']}" and r["level"] == 1
