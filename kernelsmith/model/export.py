"""Installed winners as a pip-installable package that does not need kernelsmith.

    DIR/pyproject.toml, README.md
    DIR/src/PKG/__init__.py      registers the ops on import; PKG.optimize(module) -> drop-in module
    DIR/src/PKG/_runtime.py      kernelsmith/model/runtime.py, verbatim (torch and stdlib only)
    DIR/src/PKG/forward.py       the model's rewritten forward (torch.fx code calling the ops)
    DIR/src/PKG/manifest.json    per op: signature, tolerance, speedups, the run that found it
    DIR/src/PKG/kernels/OP.py    the verified candidate (ModelNew)
    DIR/src/PKG/references/OP.py the task it was verified against, with its weights file
    DIR/tests/test_recheck.py    re-checks every kernel against its reference on a GPU (skips
                                 cleanly without one) and that the package imports and registers

`pip install DIR` (or a wheel built from it) into another environment; `pytest DIR/tests`
there re-checks the kernels on that machine's GPU before they are trusted.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

from kernelsmith.model.errors import ModelError
from kernelsmith.model.install import Winner
from kernelsmith.model.taskgen import clean_src, header_lines

RUNTIME = Path(__file__).with_name("runtime.py")

_INIT = '''"""{title}

Kernels found and verified by kernelsmith for {model}; importing this
package registers them as torch.library ops, torch.ops.{ns}.<name>. `optimize(module)`
wraps a {model} module so that its forward calls them for the verified input signature
(and runs the module itself for anything else). Re-check on your GPU: pytest tests/.
"""

import json
from pathlib import Path

from {pkg}._runtime import Guarded, Kernel, load_file, register

HERE = Path(__file__).resolve().parent
MANIFEST = json.loads((HERE / "manifest.json").read_text())
NAMESPACE = MANIFEST["namespace"]
KERNELS = {{}}
OPS = {{}}
for _op in MANIFEST["ops"]:
    KERNELS[_op["name"]] = Kernel(_op["name"], HERE / "kernels" / f"{{_op['name']}}.py",
                                  HERE / "references" / f"{{_op['name']}}.py", _op["inputs"], _op["params"])
    OPS[_op["name"]] = register(NAMESPACE, _op["name"], KERNELS[_op["name"]])


def reference(name: str):
    """The task module an op was verified against (Model, get_inputs, get_init_inputs)."""
    return KERNELS[name].reference()


def optimize(module):
    """`module` (a {model}, in eval mode, on a GPU) with the verified kernels in its forward."""
    from {pkg}.forward import forward

    return Guarded(module, lambda *xs: forward(module, *xs), MANIFEST["inputs"],
                   f"{{len(OPS)}} kernelsmith op(s) from {pkg}")
'''

_TEST = '''"""Re-check every kernel of this package against its reference (fresh inputs, the
harness's tolerance for the dtype). Needs a CUDA GPU; without one the checks skip."""

import pytest
import torch

import {pkg}

OPS = [op["name"] for op in {pkg}.MANIFEST["ops"]]


def test_package_imports_and_registers_its_ops():
    assert OPS, "the package holds no kernel"
    for name in OPS:
        assert {pkg}.OPS[name] is getattr(getattr(torch.ops, {pkg}.NAMESPACE), name).default


@pytest.mark.skipif(not torch.cuda.is_available(), reason="re-checking a kernel needs a CUDA GPU")
@pytest.mark.parametrize("name", OPS)
def test_kernel_matches_its_reference(name):
    op = next(o for o in {pkg}.MANIFEST["ops"] if o["name"] == name)
    ref = {pkg}.reference(name)
    params = [p.cuda() for p in ref.get_init_inputs()]
    model = ref.Model(*params).cuda()
    for trial in range(3):
        torch.manual_seed(1000 + trial)
        xs = [x.cuda() for x in ref.get_inputs()]
        with torch.no_grad():
            want = model(*xs)
            got = {pkg}.OPS[name](*xs, *params)
        assert got.shape == want.shape and got.dtype == want.dtype
        err = (got - want).abs().max().item()
        assert torch.allclose(got, want, atol=op["atol"], rtol=op["rtol"]), f"trial {{trial}}: max abs error {{err}}"
'''


def _py_name(name: str) -> str:
    s = re.sub(r"\W+", "_", name).strip("_").lower()
    if not s or s[0].isdigit():
        raise ModelError(f"{name!r} is not usable as a Python package name")
    return s


def forward_module(gm) -> str:
    """The rewritten graph's forward as a module-level function forward(self, *inputs)."""
    code = gm.graph.python_code("self")
    return ('"""The model\'s forward as kernelsmith rewrote it: torch.fx code calling the verified ops.\n'
            'Called as forward(module, *inputs) with the original module as `self`."""\n\n'
            + "\n".join(header_lines(code.globals, "an exported package")) + "\n\n"
            + clean_src(code.src) + "\n")


def export_package(report, winners: list[Winner], optimized, out_dir: str | Path, package: str) -> Path:
    """Write the package for the installed `winners` of `report` (see the module docstring)."""
    from kernelsmith.harness.check import tolerance

    pkg = _py_name(package)
    out = Path(out_dir)
    if out.exists() and any(out.iterdir()):
        if not (out / "pyproject.toml").is_file():
            raise ModelError(f"{out} exists and is not an exported package: choose an empty directory")
        shutil.rmtree(out)
    src = out / "src" / pkg
    (src / "kernels").mkdir(parents=True)
    (src / "references").mkdir()
    (out / "tests").mkdir()
    shutil.copyfile(RUNTIME, src / "_runtime.py")
    gm = optimized._forward
    ops = []
    for w in winners:
        kern = _kernel_of(w)
        shutil.copyfile(w.kernel_path, src / "kernels" / f"{w.op_name}.py")
        shutil.copyfile(w.task_path, src / "references" / f"{w.op_name}.py")
        for weights in Path(w.task_path).parent.glob("ks_weights_*.pt"):
            if weights.name in Path(w.task_path).read_text():
                shutil.copyfile(weights, src / "references" / weights.name)
        atol, rtol = tolerance(w.group.root.meta["ks_tensor"][1], None, None)
        ops.append({"name": w.op_name, "key": w.group.key, "ops": w.group.ops, "inputs": kern.inputs,
                    "params": kern.params, "param_targets": [str(p.target) for p in w.group.params],
                    "task_speedup": w.speedup, "run_id": w.run_id, "atol": atol, "rtol": rtol})
    manifest = {"model": report.name, "namespace": report.namespace, "inputs": optimized._inputs, "ops": ops,
                "end_to_end": report.e2e, "device": report.device}
    (src / "manifest.json").write_text(json.dumps(manifest, indent=2, default=str) + "\n")
    (src / "forward.py").write_text(forward_module(gm))
    (src / "__init__.py").write_text(_INIT.format(title=f"{pkg}: kernelsmith kernels for {report.name}.",
                                                  model=report.name, ns=report.namespace, pkg=pkg))
    (out / "tests" / "test_recheck.py").write_text(_TEST.format(pkg=pkg))
    (out / "pyproject.toml").write_text(f'''[build-system]
requires = ["setuptools>=61"]
build-backend = "setuptools.build_meta"

[project]
name = "{pkg.replace('_', '-')}"
version = "0.1.0"
description = "kernelsmith-verified kernels for {report.name} (torch.library custom ops)"
readme = "README.md"
requires-python = ">=3.9"
dependencies = ["torch"]

[project.optional-dependencies]
# the kernels' language runtime: CuPy must match the CUDA of your torch (cupy-cuda12x or cupy-cuda13x)
cupy = ["cupy-cuda12x"]
test = ["pytest"]

[tool.setuptools]
package-dir = {{"" = "src"}}
packages = ["{pkg}"]

[tool.setuptools.package-data]
"{pkg}" = ["manifest.json", "kernels/*.py", "references/*.py", "references/*.pt"]
''')
    e = report.e2e or {}
    rows = "\n".join(f"| `{o['name']}` | `{o['key']}` | {o['task_speedup']:.3f}x |" for o in ops)
    (out / "README.md").write_text(f"""# {pkg}

Kernels that kernelsmith verified for `{report.name}` (on {report.device}), as torch.library custom ops
in the namespace `{report.namespace}`. End to end: {f"{e['speedup']:.3f}x" if e.get('speedup') else 'not measured'}.

```python
import {pkg}
fast = {pkg}.optimize(model.eval().cuda())   # drop-in; other input shapes run the model itself
```

| op | group of the model | speedup on its task |
|---|---|---|
{rows}

Re-check the kernels on your GPU after installing: `pytest tests/` (skips without a GPU).
The kernels need their language runtime (CuPy: `pip install cupy-cuda12x` or `cupy-cuda13x`).
""")
    return out


def _kernel_of(w: Winner):
    from kernelsmith.model.runtime import _KERNELS

    for qual, k in _KERNELS.items():
        if qual.endswith(f"::{w.op_name}") and Path(k.kernel_path) == Path(w.kernel_path):
            return k
    raise ModelError(f"kernel {w.op_name} is not installed in this process")
