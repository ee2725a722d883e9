"""kernelsmith: LLM-written CUDA kernels for PyTorch, proven correct and fast on a real GPU.

`kernelsmith.optimize(module, example_inputs, model=..., budget=...)` returns a drop-in
module running the best verified kernel (kernelsmith.model.api; docs/model.md).
"""


def optimize(module, example_inputs, **kwargs):
    """See kernelsmith.model.api.optimize (imported on first use: `import kernelsmith` stays light)."""
    from kernelsmith.model.api import optimize as _optimize

    return _optimize(module, example_inputs, **kwargs)
