"""Tensor plumbing the GPU stage shares: fresh inputs, clones, in-place sparse updates,
poisoning memory the candidate should not find results in, and sealed tensors.

Sealing: the reference's outputs sit in GPU memory while the candidate runs (computed
before it was imported, or a timed reference call that went first in its round). A
kernel can find any live or freed block through the allocator's snapshot and copy it,
so a held result is XOR-scrambled with a secret key and the original is poisoned; only
`open()` gives the values back, as a new tensor.
"""

from __future__ import annotations

import secrets

import torch

_INT_OF_SIZE = {1: torch.uint8, 2: torch.int16, 4: torch.int32, 8: torch.int64}


def to(dev, xs: list) -> list:
    return [x.to(dev) if isinstance(x, torch.Tensor) else x for x in xs]


def clone(xs: list) -> list:
    return [x.clone() if isinstance(x, torch.Tensor) else x for x in xs]


def flatten(out) -> list:
    return list(out) if isinstance(out, (tuple, list)) else [out]


def fresh_inputs(task, dev) -> list:
    """The task's own get_inputs(), under a secret seed, with the GPU as default device
    (CPU random generation of large inputs costs more than the whole check)."""
    torch.manual_seed(secrets.randbits(62))
    with torch.device(dev):
        return to(dev, list(task.get_inputs()))


def perturb(xs: list, gen: torch.Generator, amplitude: float = 1e-3) -> list:
    """New content at new addresses with the same structure: floats scaled by
    1 +/- amplitude elementwise (zeros, signs and sparsity survive), other tensors cloned."""
    out = []
    for x in xs:
        if isinstance(x, torch.Tensor) and x.is_floating_point():
            noise = torch.rand(x.shape, generator=gen, device=x.device, dtype=torch.float32)
            out.append((x * (1 + 2 * amplitude * (noise - 0.5)).to(x.dtype)).contiguous())
        else:
            out.append(x.clone() if isinstance(x, torch.Tensor) else x)
    return out


def sparse_plan(xs: list, frac: float, gen: torch.Generator) -> list:
    """For each contiguous float tensor of at least 1024 elements, random flat indices of
    about `frac` of its elements (None for the others)."""
    plan = []
    for x in xs:
        if isinstance(x, torch.Tensor) and x.is_floating_point() and x.numel() >= 1024 and x.is_contiguous():
            plan.append(torch.randint(0, x.numel(), (max(1, int(x.numel() * frac)),), generator=gen, device=x.device))
        else:
            plan.append(None)
    return plan


def sparse_apply(xs: list, fresh: list, plan: list) -> bool:
    """Overwrite, in place, the planned elements of xs with the same elements of `fresh`.
    Returns whether anything changed."""
    changed = False
    for x, y, idx in zip(xs, fresh, plan):
        if idx is not None and isinstance(y, torch.Tensor) and y.shape == x.shape:
            flat, src = x.view(-1), y.reshape(-1).to(x.dtype)
            flat[idx] = src[idx]
            changed = True
    return changed


def sparse_update(xs: list, fresh: list, frac: float, gen: torch.Generator) -> bool:
    """Overwrite, in place, about `frac` of the elements of each contiguous float tensor of
    at least 1024 elements in xs with the same elements of `fresh` (same distribution)."""
    return sparse_apply(xs, fresh, sparse_plan(xs, frac, gen))


def poison_like(shapes: list, device) -> None:
    """Fill freed allocator blocks of these (shape, dtype) sizes on `device` with NaN (7
    for integer types), so an output the candidate allocates but never writes reads as
    poison, not a stale result. (On the device: blocks made on the host poison nothing the
    candidate's allocations get, and cost milliseconds per call.)"""
    blocks = [torch.full(s, float("nan") if d.is_floating_point else 7, dtype=d, device=device) for s, d in shapes]
    del blocks


def shapes_of(out) -> list:
    return [(tuple(t.shape), t.dtype) for t in flatten(out) if isinstance(t, torch.Tensor)]


def poison(out, keep: tuple = ()) -> None:
    """Overwrite tensors in place (NaN, or 7 for integers): memory a call returned is
    checked once, then holds nothing a later call could pass off as its own work. Tensors
    sharing memory with one in `keep` (the reference's weights) are left alone."""
    with torch.no_grad():
        for t in flatten(out):
            if type(t) is torch.Tensor and t.numel() and not _shares(t, keep):
                t.fill_(float("nan") if t.is_floating_point() else 7)


def _shares(t: torch.Tensor, others: tuple) -> bool:
    if not others:
        return False
    s = t.untyped_storage()
    a0, a1 = s.data_ptr(), s.data_ptr() + s.nbytes()
    for o in others:
        if isinstance(o, torch.Tensor) and o.device == t.device:
            so = o.untyped_storage()
            if a0 < so.data_ptr() + so.nbytes() and so.data_ptr() < a1:
                return True
    return False


class Sealed:
    """A tensor (or tuple/list of them) held scrambled; see the module docstring."""

    def __init__(self, out, poison_original: bool = True, keep: tuple = ()):
        self.kind = type(out) if isinstance(out, (tuple, list)) else None
        self.items = []
        for t in flatten(out):
            if not isinstance(t, torch.Tensor) or t.element_size() not in _INT_OF_SIZE or t.is_complex():
                self.items.append(("plain", t, None))
                continue
            key = secrets.randbits(7) + 1  # a small key fits every width; zero would not scramble
            bits = t.detach().contiguous().clone().view(_INT_OF_SIZE[t.element_size()])
            bits.bitwise_xor_(key)
            self.items.append(("sealed", bits, (key, t.dtype, tuple(t.shape))))
        if poison_original:
            poison(out, keep)

    def open(self):
        opened = []
        for kind, data, meta in self.items:
            if kind == "plain":
                opened.append(data)
                continue
            key, dtype, shape = meta
            opened.append(data.bitwise_xor(key).view(dtype).view(shape))  # contiguous: values, not strides
        if self.kind is None:
            return opened[0]
        return self.kind(opened)

    def storages(self) -> list:
        return [d for kind, d, _ in self.items if kind == "sealed"]
