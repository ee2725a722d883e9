"""The runtime of installed kernels: an op runs its kernel only for the verified signature,
swaps its kernel when registered again (a notebook cell run twice), and has a fake
implementation for tracing."""

from __future__ import annotations

import pytest
import torch

from kernelsmith.model.runtime import Kernel, register


def _files(tmp_path, factor: float):
    ref = tmp_path / "ref.py"
    ref.write_text("import torch.nn as nn\n\nclass Model(nn.Module):\n    def __init__(self, w):\n"
                   "        super().__init__()\n        self.register_buffer('w', w)\n\n"
                   "    def forward(self, x):\n        return x * self.w\n")
    new = tmp_path / f"new{factor}.py"
    new.write_text(ref.read_text().replace("Model", "ModelNew").replace("x * self.w", f"x * self.w * {factor}"))
    return ref, new


def test_only_the_verified_signature_runs(tmp_path, on_cpu):
    ref, new = _files(tmp_path, 1.0)
    k = Kernel("mulw", new, ref, [((2, 3), "float32")], [((3,), "float32")])
    w = torch.randn(3)
    x = torch.randn(2, 3)
    torch.testing.assert_close(k(x, w), x * w)
    with pytest.raises(RuntimeError, match=r"argument 0 is \(\(4, 3\), 'float32'\), verified at \(\(2, 3\), 'float32'\)"):
        k(torch.randn(4, 3), w)
    with pytest.raises(RuntimeError, match="argument 1 is .*float64"):
        k(x, w.double())
    # a non-contiguous input is made contiguous, as the task's inputs were
    xt = torch.randn(3, 2).t()
    torch.testing.assert_close(k(xt, w), xt * w)


def test_cuda_only_by_default(tmp_path):
    ref, new = _files(tmp_path, 1.0)
    k = Kernel("mulw", new, ref, [((2, 3), "float32")], [((3,), "float32")])
    with pytest.raises(RuntimeError, match="is on cpu; the kernel was verified on a CUDA device"):
        k(torch.randn(2, 3), torch.randn(3))


def test_registering_again_swaps_the_kernel_and_fake_gives_shapes(tmp_path, on_cpu):
    ref, new1 = _files(tmp_path, 1.0)
    _, new2 = _files(tmp_path, 3.0)
    sig = ([((2, 3), "float32")], [((3,), "float32")])
    op = register("ks_test_runtime", "mulw", Kernel("mulw", new1, ref, *sig))
    x, w = torch.randn(2, 3), torch.randn(3)
    torch.testing.assert_close(op(x, w), x * w)
    op2 = register("ks_test_runtime", "mulw", Kernel("mulw", new2, ref, *sig))
    assert op2 is op
    torch.testing.assert_close(op(x, w), x * w * 3.0)
    from torch._subclasses.fake_tensor import FakeTensorMode

    with FakeTensorMode() as mode:
        out = op(mode.from_tensor(x), mode.from_tensor(w))
    assert out.shape == (2, 3) and out.dtype == torch.float32
