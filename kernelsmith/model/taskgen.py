"""A group of a captured graph -> a KernelBench-format task file (plus its weights file).

The task's `Model` replays the group's nodes (torch.fx writes the forward); the group's
parameters (the model's own weights and buffers) are `Model`'s constructor arguments, and
`get_init_inputs()` returns them, read from a weights file beside the task
(`ks_weights_<sha>.pt`, a `torch.save`d dict loaded with `weights_only=True`) and checked
against the SHA-256 written in the task. So the task hash pins the weights, a candidate's
`ModelNew(*get_init_inputs())` gets the very same tensors as the reference, and the file
is found wherever the task is copied with its neighbour (the evaluator copies tasks into
its cache, `<cache>/tasks/`, and the sandbox exposes a task's directory: the weights are
written there too). `get_inputs()` draws fresh tensors with the real shapes and dtypes.
Python numbers the group takes from outside (x.shape[0] // 8) are baked in as constants:
a task, like its kernel, is for one static shape.
"""

from __future__ import annotations

import hashlib
import io
import os
import re
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.fx as fx

from kernelsmith.model.capture import label
from kernelsmith.model.errors import ModelError
from kernelsmith.model.groups import Group

# names torch.fx's code may refer to, and how the task file defines them
_GLOBALS = {
    "torch": "import torch",
    "device": "from torch import device",
    "inf": "inf = float('inf')",
    "nan": "nan = float('nan')",
    "NoneType": "NoneType = type(None)",
    "getattr": "",
    "fx_pytree": "import torch.fx._pytree as fx_pytree",
    "pytree": "import torch.utils._pytree as pytree",
}


def ident(text: str) -> str:
    s = re.sub(r"\W+", "_", text).strip("_")
    return s if s and not s[0].isdigit() else f"p_{s}"


@dataclass
class TaskFile:
    path: Path
    params: list[str]  # Model's constructor arguments, in order (attribute paths in the model)
    weights: Path | None
    sha256: str


def _dtype(d: torch.dtype) -> str:
    return str(d).replace("torch.", "")


def _input_expr(n: fx.Node) -> str:
    shape, dtype, _ = n.meta["ks_tensor"]
    dims = ", ".join(str(s) for s in shape) + ("," if len(shape) == 1 else "")
    if dtype.is_floating_point:
        return f"torch.randn(({dims}), dtype=torch.{_dtype(dtype)})"
    if dtype == torch.bool:
        return f"torch.rand(({dims})) < 0.5"
    lo, hi = n.meta.get("ks_range", (0, 1))
    return f"torch.randint({lo}, {hi + 1}, ({dims}), dtype=torch.{_dtype(dtype)})"


def clean_src(src: str) -> str:
    """torch.fx's forward source without its `torch.fx._symbolic_trace.wrap(...)` lines (for
    re-tracing; they must not run inside a task's class body)."""
    keep = [line for line in src.splitlines() if not line.startswith("torch.fx._symbolic_trace.wrap(")]
    return "\n".join(keep).strip("\n")


def header_lines(code_globals: dict, where: str) -> list[str]:
    """The lines a file needs to define every name torch.fx's code refers to: the fixed ones
    above, and `from MODULE import NAME as ALIAS` for functions fx wrapped (math.sqrt on a
    shape: `math_sqrt`); a ModelError for anything no file can import by name."""
    import importlib
    import types

    lines = {line for name, line in _GLOBALS.items() if line}
    for alias, obj in code_globals.items():
        if alias in _GLOBALS:
            continue
        if isinstance(obj, types.ModuleType):
            lines.add(f"import {obj.__name__} as {alias}")
            continue
        mod, qual = getattr(obj, "__module__", None), getattr(obj, "__qualname__", "")
        try:
            ok = bool(mod) and qual.isidentifier() and getattr(importlib.import_module(mod), qual) is obj
        except (ImportError, AttributeError):
            ok = False
        if not ok:
            raise ModelError(f"the graph calls {alias} ({obj!r}), which {where} cannot import by name: write it with "
                             "torch functions")
        lines.add(f"from {mod} import {qual} as {alias}")
    imports = sorted(line for line in lines if line.startswith(("import", "from")))
    return imports + [""] + sorted(lines - set(imports))


def forward_source(group: Group) -> tuple[str, list[str], list[str], dict]:
    """(forward's source, input names, parameter attribute names, the names it refers to)."""
    g = fx.Graph()
    env: dict[fx.Node, object] = {}
    in_names = []
    for i, n in enumerate(group.inputs):
        name = ident(label(n)) if n.op == "placeholder" else f"x{i}"
        env[n] = g.placeholder(name)
        in_names.append(env[n].name)
    pnames = []
    for p in group.params:
        name = ident(str(p.target))
        env[p] = g.get_attr(name)
        pnames.append(name)
    env.update(group.consts)
    for n in group.nodes:
        env[n] = g.node_copy(n, lambda a: env[a])
    root = group.root if group.kind != "module" else None
    if root is not None:
        g.output(env[root])
    else:
        out = next(n for n in group.nodes[0].graph.nodes if n.op == "output")
        g.output(fx.node.map_arg(out.args[0], lambda a: env[a]))
    code = g.python_code("self")
    header_lines(code.globals, "a task file")  # fails early on a name no file can import
    return clean_src(code.src), in_names, pnames, code.globals


def task_source(group: Group, title: str, origin: str, weights_name: str | None, sha: str) -> tuple[str, list[str]]:
    forward, _, pnames, names = forward_source(group)
    header = [h for h in header_lines(names, "a task file") if h != "import torch"]
    lines = [
        f'"""kernelsmith task: {title}.',
        "",
        f"Extracted by kernelsmith from {origin}: the reference replays the captured graph (torch.fx) of",
        f"{group.describe()}.",
        "Its parameters are the model's own weights: the init inputs, read from the file beside this one",
        "and checked against their SHA-256. A kernel is verified for exactly these shapes and dtypes.",
        '"""',
        "",
        "import hashlib",
        "import io",
        "import os",
        "",
        "import torch",
        "import torch.nn as nn",
        *header,
        "",
        f"WEIGHTS = {weights_name!r}",
        f"WEIGHTS_SHA256 = {sha!r}",
        f"PARAMS = {pnames!r}",
        "",
        "",
        "class Model(nn.Module):",
        f"    def __init__(self{''.join(', ' + p for p in pnames)}):",
        "        super().__init__()",
        *[f"        self.register_buffer({p!r}, {p})" for p in pnames],
        "",
        *["    " + line if line else "" for line in forward.splitlines()],
        "",
        "",
        "def get_inputs():",
        f"    return [{', '.join(_input_expr(n) for n in group.inputs)}]",
        "",
        "",
        "def get_init_inputs():",
        "    if WEIGHTS is None:",
        "        return []",
        "    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), WEIGHTS)",
        "    with open(path, 'rb') as f:",
        "        data = f.read()",
        "    if hashlib.sha256(data).hexdigest() != WEIGHTS_SHA256:",
        "        raise RuntimeError(f'{path} is not the weights this task was made with (SHA-256 differs)')",
        "    tensors = torch.load(io.BytesIO(data), map_location='cpu', weights_only=True)",
        "    return [tensors[name] for name in PARAMS]",
        "",
    ]
    return "\n".join(lines), pnames


def weights_bytes(gm: fx.GraphModule, group: Group, pnames: list[str]) -> bytes:
    tensors = {}
    for p, name in zip(group.params, pnames):
        t = gm.get_parameter(p.target) if _is_param(gm, p.target) else _attr(gm, p.target)
        tensors[name] = t.detach().to("cpu").contiguous().clone()
    buf = io.BytesIO()
    torch.save(tensors, buf)
    return buf.getvalue()


def _is_param(gm, target: str) -> bool:
    try:
        gm.get_parameter(target)
        return True
    except AttributeError:
        return False


def _attr(gm, target: str):
    obj = gm
    for part in target.split("."):
        obj = getattr(obj, part)
    if not isinstance(obj, torch.Tensor):
        raise ModelError(f"attribute {target} used by the graph is a {type(obj).__name__}, not a tensor")
    return obj


def write_task(gm: fx.GraphModule, group: Group, path: Path, title: str, origin: str,
               also: list[Path] = ()) -> TaskFile:
    """Write the task (and its weights beside it, and into each directory of `also`, e.g.
    the evaluator's `<cache>/tasks`)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    _, _, pnames, _ = forward_source(group)
    weights, sha, wname = None, "", None
    if pnames:
        data = weights_bytes(gm, group, pnames)
        sha = hashlib.sha256(data).hexdigest()
        wname = f"ks_weights_{sha[:32]}.pt"
        for d in [path.parent, *map(Path, also)]:
            d.mkdir(parents=True, exist_ok=True)
            target = d / wname
            if not target.exists():
                tmp = target.with_suffix(f".tmp{os.getpid()}")
                tmp.write_bytes(data)
                tmp.chmod(0o644)  # sandboxed jobs may run as nobody
                tmp.replace(target)
        weights = path.parent / wname
    source, pnames = task_source(group, title, origin, wname, sha)
    path.write_text(source)
    return TaskFile(path, [str(p.target) for p in group.params], weights, sha)
