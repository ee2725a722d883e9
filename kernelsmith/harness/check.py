"""Comparing a candidate's output with the reference's.

The functions used here are bound at import time, before any candidate code runs, so a
candidate that monkeypatches `torch.allclose` or tensor operators changes nothing in
the checker (and the integrity check reports the patch).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

_isfinite = torch.isfinite
_any = torch.any
_abs = torch.abs
_linalg_norm = torch.linalg.vector_norm
_TensorType = torch.Tensor

# KernelBench's current defaults.
DEFAULT_TOL = {
    torch.float32: (1e-4, 1e-4),
    torch.float64: (1e-7, 1e-7),
    torch.float16: (1e-2, 1e-2),
    torch.bfloat16: (1e-2, 1e-2),
}


@dataclass
class Mismatch:
    error: str  # an ErrorClass value
    detail: str


@dataclass
class Errors:
    max_abs: float = 0.0
    rel: float = 0.0


def flatten(out) -> list:
    if isinstance(out, (tuple, list)):
        return list(out)
    return [out]


def tolerance(dtype: torch.dtype, atol: float | None, rtol: float | None) -> tuple[float, float]:
    da, dr = DEFAULT_TOL.get(dtype, (1e-4, 1e-4))
    return (da if atol is None else atol, dr if rtol is None else rtol)


def storage_span(t: torch.Tensor) -> tuple[int, int]:
    s = t.untyped_storage()
    return s.data_ptr(), s.data_ptr() + s.nbytes()


def aliases(out: torch.Tensor, inputs: list) -> bool:
    o0, o1 = storage_span(out)
    for x in inputs:
        if isinstance(x, _TensorType) and x.device == out.device and x.numel() and out.numel():
            i0, i1 = storage_span(x)
            if o0 < i1 and i0 < o1:
                return True
    return False


def compare(cand_out, ref_out, cand_inputs: list, atol: float | None, rtol: float | None,
            errors: Errors) -> Mismatch | None:
    """None when the candidate's output matches; otherwise what differed. Updates errors."""
    refs, cands = flatten(ref_out), flatten(cand_out)
    if isinstance(ref_out, (tuple, list)) != isinstance(cand_out, (tuple, list)) or len(refs) != len(cands):
        return Mismatch("output_type", f"expected {_describe(ref_out)}, got {_describe(cand_out)}")
    for i, (c, r) in enumerate(zip(cands, refs)):
        where = f"output {i}: " if len(refs) > 1 else ""
        if not isinstance(r, _TensorType):
            continue  # non-tensor reference outputs are not compared
        if type(c) is not _TensorType:  # exact type: subclasses can compute lazily
            return Mismatch("output_type", f"{where}expected a plain torch.Tensor, got {type(c).__module__}.{type(c).__name__}")
        if c.device != r.device:
            return Mismatch("device", f"{where}output is on {c.device}, expected {r.device}")
        if tuple(c.shape) != tuple(r.shape):
            return Mismatch("shape", f"{where}shape {tuple(c.shape)}, expected {tuple(r.shape)}")
        if c.dtype != r.dtype:
            return Mismatch("dtype", f"{where}dtype {c.dtype}, expected {r.dtype}")
        if aliases(c, cand_inputs):
            return Mismatch("aliasing", f"{where}output shares memory with an input; return a new tensor")
        bad = _value_mismatch(c, r, atol, rtol, errors)
        if bad is not None:
            return Mismatch(bad.error, where + bad.detail)
    return None


def _value_mismatch(c: torch.Tensor, r: torch.Tensor, atol, rtol, errors: Errors) -> Mismatch | None:
    if r.numel() == 0:
        return None
    if not r.is_floating_point():
        if not bool(torch.equal(c, r)):
            return Mismatch("mismatch", "integer/bool output differs from the reference")
        return None
    a, rt = tolerance(r.dtype, atol, rtol)
    c64, r64 = c.detach().double(), r.detach().double()
    cf, rf = _isfinite(c64), _isfinite(r64)
    if bool(_any(~cf & rf)):
        n = int((~cf & rf).sum())
        return Mismatch("nan", f"{n} NaN/Inf values where the reference is finite")
    diff = _abs(c64 - r64)
    diff = torch.where(rf, diff, torch.zeros_like(diff))
    max_abs = float(diff.max())
    rel = float(_linalg_norm(diff) / max(float(_linalg_norm(torch.where(rf, r64, 0.0))), 1e-30))
    errors.max_abs, errors.rel = max(errors.max_abs, max_abs), max(errors.rel, rel)
    over = diff > (a + rt * _abs(r64))
    if bool(_any(over)):
        n = int(over.sum())
        idx = int(torch.argmax((diff - (a + rt * _abs(r64))).flatten()))
        pos = tuple(int(v) for v in torch.unravel_index(torch.tensor(idx), r.shape))
        return Mismatch("mismatch", f"{n} of {r.numel()} values outside atol={a:g}, rtol={rt:g}; "
                                    f"worst at index {pos}: got {float(c64.flatten()[idx]):.6g}, "
                                    f"expected {float(r64.flatten()[idx]):.6g} (max abs error {max_abs:.3g}, "
                                    f"relative error {rel:.3g})")
    return None


def near_constant(ref_out) -> bool:
    """A reference whose output barely varies cannot tell a right kernel from a wrong one."""
    for r in flatten(ref_out):
        if isinstance(r, _TensorType) and r.is_floating_point() and r.numel() > 1:
            r64 = r.detach().double()
            spread = float(r64.max() - r64.min())
            if spread <= 1e-6 * (float(r64.abs().mean()) + 1e-12):
                return True
    return False


def _describe(out) -> str:
    if isinstance(out, (tuple, list)):
        return f"{type(out).__name__} of {len(out)}"
    return type(out).__name__


def fast_close(cand_out, ref_out, atol: float | None, rtol: float | None) -> bool:
    """A cheap re-check for timed outputs: structure, finiteness and tolerance only."""
    refs, cands = flatten(ref_out), flatten(cand_out)
    if len(refs) != len(cands):
        return False
    for c, r in zip(cands, refs):
        if not isinstance(r, _TensorType):
            continue
        if type(c) is not _TensorType or c.shape != r.shape or c.dtype != r.dtype or c.device != r.device:
            return False
        if not r.is_floating_point():
            if not bool(torch.equal(c, r)):
                return False
            continue
        a, rt = tolerance(r.dtype, atol, rtol)
        cf, rf = c.float(), r.float()
        ok = (_abs(cf - rf) <= a + rt * _abs(rf)) | (~_isfinite(rf) & (cf.isnan() == rf.isnan()))
        if not bool(ok.all()):
            return False
    return True
