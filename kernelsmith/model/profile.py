"""The model under torch.profiler: which operators (and, on a GPU, which kernels) take the
time of one forward, for the report. The ranking of groups uses the per-node times of
kernelsmith.model.groups.node_times (they map onto graph nodes); this table is the
profiler's own view of the same forward, as a cross-check a user can read."""

from __future__ import annotations

import logging

import torch

log = logging.getLogger(__name__)


def profiler_table(module, inputs: list, top: int = 10, runs: int = 3) -> list[dict]:
    """[{"name", "ms_per_forward", "calls_per_forward"}] of the `top` most expensive entries
    (self time on the GPU when the inputs are CUDA tensors, else on the CPU); [] when the
    profiler is unavailable here."""
    from torch.profiler import ProfilerActivity, profile

    from kernelsmith.harness.provenance import cupti_teardown

    cupti_teardown()  # the end-to-end timing that follows must not run under CUPTI
    cuda = any(isinstance(x, torch.Tensor) and x.is_cuda for x in inputs)
    acts = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if cuda else [])
    try:
        with torch.no_grad():
            module(*inputs)  # warm
            if cuda:
                torch.cuda.synchronize()
            with profile(activities=acts) as prof:
                for _ in range(runs):
                    module(*inputs)
                if cuda:
                    torch.cuda.synchronize()
        rows = []
        for e in prof.key_averages():
            if cuda:
                us = getattr(e, "self_device_time_total", None)
                if us is None:
                    us = getattr(e, "self_cuda_time_total", 0.0)
            else:
                us = e.self_cpu_time_total
            if us and us > 0:
                rows.append({"name": e.key, "ms_per_forward": us / 1e3 / runs, "calls_per_forward": e.count / runs})
    except Exception as exc:  # noqa: BLE001 - the profiler is an aid to the report, never a reason to stop
        log.warning("torch.profiler failed: %s", exc)
        return []
    rows.sort(key=lambda r: -r["ms_per_forward"])
    return rows[:top]
