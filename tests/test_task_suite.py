"""Checks for the bundled KernelBench-format task suite (tasks/) and the candidate fixtures
(tests/fixtures/solutions/). CPU only: tasks run with reduced shapes; fixtures are only parsed.

Where nvcc is on PATH, every CuPy fixture's kernel source is also compiled for sm_90.
"""
from __future__ import annotations

import ast
import importlib.util
import json
import shutil
import subprocess
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
TASKS_DIR = REPO / "tasks"
SOLUTIONS_DIR = REPO / "tests" / "fixtures" / "solutions"
MANIFEST = SOLUTIONS_DIR / "manifest.json"

# task stem -> (task path relative to the repo, module constants overridden for the CPU run)
TASKS: dict[str, tuple[str, dict[str, int]]] = {
    "level1_001_leaky_relu_scale": ("tasks/level1/001_leaky_relu_scale.py", {"BATCH": 64, "DIM": 256}),
    "level1_002_row_softmax": ("tasks/level1/002_row_softmax.py", {"BATCH": 64, "DIM": 512}),
    "level1_003_row_sum": ("tasks/level1/003_row_sum.py", {"BATCH": 4, "DIM1": 128, "DIM2": 64}),
    "level1_004_matmul": ("tasks/level1/004_matmul.py", {"M": 96, "K": 128, "N": 80}),
    "level2_001_linear_bias_gelu": (
        "tasks/level2/001_linear_bias_gelu.py",
        {"BATCH": 32, "IN_FEATURES": 64, "OUT_FEATURES": 48},
    ),
    "level3_001_mlp": (
        "tasks/level3/001_mlp.py",
        {"BATCH": 16, "IN_FEATURES": 64, "HIDDEN": 128, "OUT_FEATURES": 32},
    ),
    # tasks added later; fixtures: correct_cupy.py + wrong.py only
    "level1_005_relu": ("tasks/level1/005_relu.py", {"BATCH": 32, "DIM": 256}),
    "level1_006_gelu_erf": ("tasks/level1/006_gelu_erf.py", {"BATCH": 32, "DIM": 256}),
    "level1_007_silu": ("tasks/level1/007_silu.py", {"BATCH": 32, "DIM": 256}),
    "level1_008_softplus": ("tasks/level1/008_softplus.py", {"BATCH": 32, "DIM": 256}),
    "level1_009_hardswish": ("tasks/level1/009_hardswish.py", {"BATCH": 32, "DIM": 256}),
    "level1_010_clamp": ("tasks/level1/010_clamp.py", {"BATCH": 32, "DIM": 256}),
    "level1_011_elu": ("tasks/level1/011_elu.py", {"BATCH": 32, "DIM": 256}),
    "level1_012_max_dim": ("tasks/level1/012_max_dim.py", {"BATCH": 3, "DIM1": 40, "DIM2": 70}),
    "level1_013_mean_lastdim": ("tasks/level1/013_mean_lastdim.py", {"BATCH": 50, "DIM": 700}),
    "level1_014_argmax_lastdim": ("tasks/level1/014_argmax_lastdim.py", {"BATCH": 50, "DIM": 700}),
    "level1_015_row_l2_norm": ("tasks/level1/015_row_l2_norm.py", {"BATCH": 50, "DIM": 700}),
    "level1_016_logsumexp": ("tasks/level1/016_logsumexp.py", {"BATCH": 50, "DIM": 700}),
    "level1_017_log_softmax": ("tasks/level1/017_log_softmax.py", {"BATCH": 40, "DIM": 600}),
    "level1_018_softmax_dim1": ("tasks/level1/018_softmax_dim1.py", {"BATCH": 3, "CHANNELS": 40, "LENGTH": 50}),
    "level1_019_layernorm": ("tasks/level1/019_layernorm.py", {"BATCH": 40, "DIM": 600}),
    "level1_020_rmsnorm": ("tasks/level1/020_rmsnorm.py", {"BATCH": 40, "DIM": 600}),
    "level1_021_batchnorm_inference": ("tasks/level1/021_batchnorm_inference.py", {"BATCH": 2, "CHANNELS": 6, "HEIGHT": 9, "WIDTH": 11}),
    "level1_022_groupnorm": ("tasks/level1/022_groupnorm.py", {"BATCH": 2, "CHANNELS": 8, "GROUPS": 4, "HEIGHT": 9, "WIDTH": 11}),
    "level1_023_cumsum": ("tasks/level1/023_cumsum.py", {"BATCH": 40, "DIM": 300}),
    "level1_024_cumprod": ("tasks/level1/024_cumprod.py", {"BATCH": 40, "DIM": 300}),
    "level1_025_bmm": ("tasks/level1/025_bmm.py", {"BATCH": 3, "M": 37, "K": 45, "N": 29}),
    "level1_026_matvec": ("tasks/level1/026_matvec.py", {"M": 70, "K": 600}),
    "level1_027_matmul_transposed_a": ("tasks/level1/027_matmul_transposed_a.py", {"M": 37, "K": 45, "N": 29}),
    "level1_028_conv1d": ("tasks/level1/028_conv1d.py", {"BATCH": 2, "IN_CHANNELS": 5, "OUT_CHANNELS": 7, "KERNEL": 5, "LENGTH": 33}),
    "level1_029_conv2d_3x3": ("tasks/level1/029_conv2d_3x3.py", {"BATCH": 2, "IN_CHANNELS": 3, "OUT_CHANNELS": 5, "HEIGHT": 9, "WIDTH": 11}),
    "level1_030_depthwise_conv2d": ("tasks/level1/030_depthwise_conv2d.py", {"BATCH": 2, "CHANNELS": 4, "HEIGHT": 9, "WIDTH": 11}),
    "level1_031_maxpool2d": ("tasks/level1/031_maxpool2d.py", {"BATCH": 2, "CHANNELS": 3, "HEIGHT": 10, "WIDTH": 12}),
    "level1_032_avgpool2d": ("tasks/level1/032_avgpool2d.py", {"BATCH": 2, "CHANNELS": 3, "HEIGHT": 10, "WIDTH": 12}),
    "level1_033_soft_cross_entropy": ("tasks/level1/033_soft_cross_entropy.py", {"BATCH": 40, "CLASSES": 300}),
    "level1_034_smooth_l1": ("tasks/level1/034_smooth_l1.py", {"BATCH": 32, "DIM": 256}),
    "level1_035_kl_div_rows": ("tasks/level1/035_kl_div_rows.py", {"BATCH": 40, "DIM": 300}),
    "level1_036_transpose_copy": ("tasks/level1/036_transpose_copy.py", {"BATCH": 3, "ROWS": 37, "COLS": 45}),
    "level1_037_nchw_to_nhwc": ("tasks/level1/037_nchw_to_nhwc.py", {"BATCH": 2, "CHANNELS": 3, "HEIGHT": 9, "WIDTH": 11}),
    "level2_002_linear_relu": ("tasks/level2/002_linear_relu.py", {"BATCH": 33, "IN_FEATURES": 70, "OUT_FEATURES": 45}),
    "level2_003_conv2d_relu_maxpool": ("tasks/level2/003_conv2d_relu_maxpool.py", {"BATCH": 2, "IN_CHANNELS": 3, "OUT_CHANNELS": 5, "HEIGHT": 10, "WIDTH": 12}),
    "level2_004_layernorm_gelu": ("tasks/level2/004_layernorm_gelu.py", {"BATCH": 40, "DIM": 600}),
    "level2_005_causal_masked_softmax": ("tasks/level2/005_causal_masked_softmax.py", {"BATCH": 3, "SEQ": 70}),
    "level2_006_residual_rmsnorm": ("tasks/level2/006_residual_rmsnorm.py", {"BATCH": 40, "DIM": 600}),
    "level2_007_scale_add_sigmoid": ("tasks/level2/007_scale_add_sigmoid.py", {"BATCH": 32, "DIM": 256}),
    "level2_008_linear_tanh_sum": ("tasks/level2/008_linear_tanh_sum.py", {"BATCH": 33, "IN_FEATURES": 70, "OUT_FEATURES": 45}),
    "level3_002_attention_block": ("tasks/level3/002_attention_block.py", {"BATCH": 2, "SEQ": 19, "DIM": 24, "HEADS": 3}),
    "level3_003_transformer_layer": ("tasks/level3/003_transformer_layer.py", {"BATCH": 2, "SEQ": 13, "DIM": 24, "HEADS": 2}),
    "level3_004_residual_conv_block": ("tasks/level3/004_residual_conv_block.py", {"BATCH": 2, "CHANNELS": 5, "HEIGHT": 9, "WIDTH": 11}),
    # the HPC suite (tasks/hpc/, docs/hpc.md); fixtures: correct_cupy.py + one or more wrong_<bug>.py
    "hpc_001_axpy": ("tasks/hpc/level1/001_axpy.py", {"N": 1000 + 3}),
    "hpc_002_gemv": ("tasks/hpc/level1/002_gemv.py", {"M": 70, "N": 301}),
    "hpc_003_gemm": ("tasks/hpc/level1/003_gemm.py", {"M": 37, "N": 29, "K": 50}),
    "hpc_004_spmv_csr": ("tasks/hpc/level1/004_spmv_csr.py", {"ROWS": 3000, "LONG_NNZ": 700}),
    "hpc_005_jacobi2d": ("tasks/hpc/level1/005_jacobi2d.py", {"HEIGHT": 40, "WIDTH": 37}),
    "hpc_006_cg": ("tasks/hpc/level1/006_cg.py", {"SIZE": 256}),
}
# tasks whose inputs include integer index tensors (CSR row pointers and column indices)
INDEX_INPUTS = {"hpc_004_spmv_csr": (torch.int32,)}
# tasks whose input sizes depend on drawn values (the CSR nonzero count): not buildable on the
# meta device, so their full-size check draws the inputs on the CPU instead
DATA_DEPENDENT = {"hpc_004_spmv_csr"}

# Largest total size (inputs + output) a full-size task may have.
MAX_FULL_SIZE_BYTES = 2 * 1024**3

# torch / functional calls that would do a candidate's real work for it
FORBIDDEN_CALLS = {
    "matmul", "mm", "bmm", "addmm", "einsum", "linear", "softmax", "log_softmax", "sum", "mean",
    "relu", "gelu", "leaky_relu", "tanh", "exp", "conv1d", "conv2d", "baddbmm", "tensordot",
}
TORCH_NAMES = {"torch", "F", "nn", "functional"}


def _load(path: Path, name: str):
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _load_task(stem: str, shrink: bool = True):
    rel, overrides = TASKS[stem]
    module = _load(REPO / rel, f"_ks_task_{stem}")
    if shrink:
        for key, value in overrides.items():
            assert hasattr(module, key), f"{rel}: expected module constant {key}"
            setattr(module, key, value)   # get_inputs / get_init_inputs read these at call time
    return module


def _class_def(tree: ast.Module, name: str) -> ast.ClassDef | None:
    for node in tree.body:
        if isinstance(node, ast.ClassDef) and node.name == name:
            return node
    return None


def _method_arity(cls: ast.ClassDef, method: str) -> tuple[int, bool]:
    """(number of positional parameters after self, has *args)."""
    for node in cls.body:
        if isinstance(node, ast.FunctionDef) and node.name == method:
            return len(node.args.args) - 1, node.args.vararg is not None
    raise AssertionError(f"{cls.name} has no {method}")


def _manifest() -> dict:
    return json.loads(MANIFEST.read_text())


def _fixture_files():
    out = []
    for stem, entry in _manifest().items():
        for fname, label in entry["solutions"].items():
            out.append((stem, fname, label))
    return out


# --------------------------------------------------------------------------- tasks


def test_task_files_exist_and_are_listed():
    found = {p.relative_to(REPO).as_posix() for p in [*TASKS_DIR.glob("level*/*.py"), *TASKS_DIR.glob("hpc/level*/*.py")]}
    assert {p for p in found if p.startswith("tasks/hpc/")} <= {rel for rel, _ in TASKS.values()}
    assert {rel for rel, _ in TASKS.values()} <= found


@pytest.mark.parametrize("stem", sorted(TASKS))
def test_task_interface(stem):
    rel, _ = TASKS[stem]
    source = (REPO / rel).read_text()
    tree = ast.parse(source)
    doc = ast.get_docstring(tree)
    assert doc and "\n" not in doc.strip(), f"{rel}: needs a one-line module docstring"
    module = _load_task(stem, shrink=False)
    assert isinstance(module.Model, type) and issubclass(module.Model, torch.nn.Module)
    assert callable(module.get_inputs) and callable(module.get_init_inputs)
    assert isinstance(module.get_init_inputs(), list)


@pytest.mark.parametrize("stem", sorted(TASKS))
def test_task_runs_on_cpu_with_small_shapes(stem):
    module = _load_task(stem)
    torch.manual_seed(0)
    init = module.get_init_inputs()
    torch.manual_seed(0)
    model = module.Model(*init).eval()
    torch.manual_seed(1)
    inputs = module.get_inputs()
    assert isinstance(inputs, list) and inputs
    for t in inputs:
        assert isinstance(t, torch.Tensor) and t.device.type == "cpu"
        assert t.dtype == torch.float32 or t.dtype in INDEX_INPUTS.get(stem, ()), f"{stem}: input dtype {t.dtype}"
        assert t.abs().max() > 0, "inputs must not be all zeros"
    with torch.no_grad():
        out = model(*inputs)
    assert isinstance(out, torch.Tensor) and out.dtype == torch.float32
    assert torch.isfinite(out).all()
    std, mean = out.std().item(), out.mean().item()
    assert std > 1e-3 * (abs(mean) + 1), f"{stem}: output looks near-constant (std={std}, mean={mean})"
    # the same seeds give the same model and inputs (the evaluator relies on seeded construction)
    torch.manual_seed(0)
    model2 = module.Model(*init).eval()
    for (name, a), b in zip(model.state_dict().items(), model2.state_dict().values()):
        assert torch.equal(a, b), f"{stem}: {name} differs between two constructions with one seed"
    with torch.no_grad():  # CPU reductions may sum in another order from run to run
        torch.testing.assert_close(model2(*inputs), out, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("stem", sorted(TASKS))
def test_task_full_size_fits(stem):
    """Full-size shapes, built on the meta device (no memory), stay under the size budget."""
    module = _load_task(stem, shrink=False)
    with torch.device("cpu" if stem in DATA_DEPENDENT else "meta"):
        model = module.Model(*module.get_init_inputs())
        inputs = module.get_inputs()
        out = model(*inputs)
    total = sum(t.numel() * t.element_size() for t in [*inputs, out])
    params = sum(p.numel() * p.element_size() for p in model.parameters())
    assert 0 < total + params <= MAX_FULL_SIZE_BYTES, f"{stem}: {total + params} bytes"


# --------------------------------------------------------------------------- fixtures


def test_manifest_covers_every_task():
    manifest = _manifest()
    assert set(manifest) == set(TASKS)
    for stem, entry in manifest.items():
        assert entry["task"] == TASKS[stem][0]
        assert (REPO / entry["task"]).is_file()
        if stem.startswith("hpc_"):  # one fixture per bug the task's inputs must catch
            wrong = {f for f in entry["solutions"] if f != "correct_cupy.py"}
            assert entry["solutions"].get("correct_cupy.py") == "correct" and wrong
            assert all(f.startswith("wrong_") and entry["solutions"][f] == "incorrect" for f in wrong)
            continue
        assert entry["solutions"] in (
            {"correct_inline.py": "correct", "correct_cupy.py": "correct", "wrong.py": "incorrect"},
            {"correct_cupy.py": "correct", "wrong.py": "incorrect"},
        )


@pytest.mark.parametrize("stem,fname,label", _fixture_files())
def test_fixture_parses_and_matches_task_signature(stem, fname, label):
    path = SOLUTIONS_DIR / stem / fname
    assert path.is_file(), path
    tree = ast.parse(path.read_text())
    cls = _class_def(tree, "ModelNew")
    assert cls is not None, f"{path}: no class ModelNew"
    task_cls = _class_def(ast.parse((REPO / TASKS[stem][0]).read_text()), "Model")
    assert task_cls is not None
    for method in ("__init__", "forward"):
        assert _method_arity(cls, method) == _method_arity(task_cls, method), f"{path}: {method} signature"


@pytest.mark.parametrize("stem,fname,label", _fixture_files())
def test_fixture_uses_own_kernels(stem, fname, label):
    path = SOLUTIONS_DIR / stem / fname
    source = path.read_text()
    tree = ast.parse(source)
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            attr = node.func.attr
            base = node.func.value
            if attr in FORBIDDEN_CALLS:
                # x.sum(), torch.matmul(...), F.linear(...) ... all count as doing the work in torch
                raise AssertionError(f"{path}:{node.lineno}: calls .{attr}() ({ast.dump(base)[:60]})")
    if fname.endswith("_inline.py") or "load_inline" in source:
        assert "load_inline(" in source and "cuda_sources=" in source
    else:
        assert "cp.RawKernel(" in source and "cp.from_dlpack(" in source
        assert "ExternalStream(" in source
        assert "data_ptr(" not in source


def _cuda_source(path: Path) -> tuple[str, str]:
    """(backend, CUDA source string) of a fixture file."""
    tree = ast.parse(path.read_text())
    strings = {}
    for node in tree.body:
        if (isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name)
                and isinstance(node.value, ast.Constant) and isinstance(node.value.value, str)):
            strings[node.targets[0].id] = node.value.value
    if "cuda_source" in strings:
        return "inline", strings["cuda_source"]
    return "cupy", strings["_SRC"]


@pytest.mark.parametrize("stem,fname,label", _fixture_files())
def test_fixture_cuda_source_present(stem, fname, label):
    backend, src = _cuda_source(SOLUTIONS_DIR / stem / fname)
    assert "__global__" in src
    if backend == "cupy":
        assert 'extern "C"' in src
        assert "#include" not in src, "NVRTC sources here are kept header-free"
    else:
        assert "#include <torch/extension.h>" in src


@pytest.mark.skipif(shutil.which("nvcc") is None, reason="nvcc is not installed")
@pytest.mark.parametrize("stem,fname,label", _fixture_files())
def test_cupy_fixture_compiles_with_nvcc(stem, fname, label, tmp_path):
    backend, src = _cuda_source(SOLUTIONS_DIR / stem / fname)
    if backend != "cupy":
        pytest.skip("inline fixture (needs torch headers; compiled on the GPU machine)")
    cu = tmp_path / "k.cu"
    cu.write_text(src)
    res = subprocess.run(["nvcc", "-arch=sm_90", "-std=c++17", "-cubin", "-o", str(tmp_path / "k.cubin"), str(cu)],
                         capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr


@pytest.mark.parametrize("stem,fname,label", _fixture_files())
def test_fixture_passes_static_screen(stem, fname, label):
    from kernelsmith.evaluate import static

    code = (SOLUTIONS_DIR / stem / fname).read_text()
    result = static.screen(code, (REPO / TASKS[stem][0]).read_text())
    assert result.ok, f"{stem}/{fname}: {result.message}"
