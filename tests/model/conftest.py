import pytest


@pytest.fixture
def on_cpu(monkeypatch):
    """Installed kernels may run on the CPU (tests of the plumbing; on a GPU they are CUDA-only)."""
    from kernelsmith.model import runtime

    monkeypatch.setattr(runtime, "DEVICE_TYPE", "cpu")
