"""The physical floor of a task: counted FLOPs over peak, minimal bytes over bandwidth."""

from __future__ import annotations

import torch

from kernelsmith.harness.tensors import poison


def _nbytes(obj) -> int:
    if isinstance(obj, torch.Tensor):
        return obj.numel() * obj.element_size()
    if isinstance(obj, (tuple, list)):
        return sum(_nbytes(x) for x in obj)
    return 0


def count(model: torch.nn.Module, inputs: list) -> tuple[float, float]:
    """FLOPs of one reference forward (torch's FlopCounterMode) and its minimal bytes:
    every input, parameter and buffer read once, every output written once."""
    from torch.utils.flop_counter import FlopCounterMode

    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        out = model(*inputs)
    flops = float(counter.get_total_flops())
    state = sum(_nbytes(t) for t in list(model.parameters()) + list(model.buffers()))
    nbytes = float(_nbytes(inputs) + _nbytes(out) + state)
    poison(out, tuple(model.parameters()) + tuple(model.buffers()))  # a correct result left in freed memory is one a candidate could return unwritten
    return flops, nbytes


def floor_ms(flops: float, nbytes: float, peak_flops: float, bandwidth: float) -> float:
    return max(flops / peak_flops if peak_flops else 0.0, nbytes / bandwidth if bandwidth else 0.0) * 1e3
