"""Shared pieces of the bench tests: tiny KernelBench-format references written on the fly."""

from __future__ import annotations

from pathlib import Path


def ref_src(marker: str, op: str = "torch.relu(x)") -> str:
    """A valid KernelBench-format reference; `marker` makes each source (and hash) distinct."""
    return (f'"""{marker}"""\nimport torch\nimport torch.nn as nn\n\n\n'
            "class Model(nn.Module):\n"
            "    def forward(self, x):\n"
            f"        return {op}\n\n\n"
            "def get_inputs():\n    return [torch.randn(64)]\n\n\n"
            "def get_init_inputs():\n    return []\n")


BAD_SRC = "import torch\n\n\nclass Model:\n    pass\n"  # no get_inputs / get_init_inputs


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def fake_checkout(root: Path) -> Path:
    """root/KernelBench/level1/{1_Relu,2_Broken,3_Tanh}.py, level2/1_Sum.py (+ noise)."""
    kb = root / "KernelBench"
    write(kb / "level1" / "1_Relu.py", ref_src("L1P1"))
    write(kb / "level1" / "2_Broken.py", BAD_SRC)
    write(kb / "level1" / "3_Tanh.py", ref_src("L1P3", "torch.tanh(x)"))
    write(kb / "level1" / "__init__.py", "")
    write(kb / "level2" / "1_Sum.py", ref_src("L2P1", "x.sum()"))
    write(root / "README.md", "fake checkout")
    return root
