"""Your own model: `kernelsmith.optimize(module, example_inputs)` (api), whole-model mode
(pipeline: capture, groups, taskgen, search, install, verify) and installable winners
(export). The runtime of installed kernels (runtime) depends on torch alone. See docs/model.md."""

from kernelsmith.model.errors import ModelError

__all__ = ["ModelError"]
