"""Run a candidate's forward a few times and exit: the program that Nsight Compute and
compute-sanitizer wrap (they attach to a process, not to a function).

    python -m kernelsmith.harness.runner TASK.py CANDIDATE.py BUILD_DIR [CALLS]
"""

from __future__ import annotations

import sys


def main(argv: list[str]) -> int:
    task_path, cand_path, build_dir = argv[:3]
    calls = int(argv[3]) if len(argv) > 3 else 2
    import torch

    from kernelsmith.harness.tensors import fresh_inputs as _fresh_inputs
    from kernelsmith.harness.loader import Capture, load_module, patch_cupy, patch_load_inline

    dev = torch.device("cuda")
    task = load_module(task_path, "ks_task")
    patch_load_inline(build_dir, Capture())
    try:
        import cupy

        patch_cupy(Capture(), cupy)
    except Exception:  # noqa: BLE001 - CuPy absent: a CuPy candidate fails at import
        pass
    cand = load_module(cand_path, "ks_candidate")
    init = list(task.get_init_inputs())
    torch.manual_seed(0)
    model = cand.ModelNew(*init).to(dev)
    with torch.no_grad():
        for _ in range(calls):
            model(*_fresh_inputs(task, dev))
    torch.cuda.synchronize()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
