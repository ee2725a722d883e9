import pytest

from kernelsmith import languages


@pytest.mark.parametrize("code,want", [
    ("import torch\nfrom torch.utils.cpp_extension import load_inline\n", "cuda"),
    ("import torch\nimport cupy as cp\n", "cupy"),
    ("import torch\nimport triton\nimport triton.language as tl\n", "triton"),
    ("from numba import cuda\n", "numba"),
    ("import pycuda.autoinit\nfrom pycuda.compiler import SourceModule\nimport cupy\n", "pycuda"),
    ("import torch\n", ""),
    ("x = 'import triton'\n", ""),
])
def test_detect(code, want):
    assert languages.detect(code) == want


def test_backend_and_names():
    assert languages.of_backend("load_inline") == "cuda"
    assert languages.of_backend("") == ""
    assert languages.names()[0] == languages.DEFAULT
    with pytest.raises(ValueError, match="choose one of"):
        languages.get("fortran")
