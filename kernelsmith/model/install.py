"""Installing verified kernels into a model: each winning group becomes one custom op
(kernelsmith.model.runtime) and the captured graph is rewritten to call it in place of the
group's nodes. Only groups whose best candidate the evaluator verified correct and faster
are installed; everything else stays the PyTorch ops the model had."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path

import torch.fx as fx

from kernelsmith.model.capture import Captured
from kernelsmith.model.groups import Group
from kernelsmith.model.runtime import Guarded, Kernel, register


@dataclass
class Winner:
    group: Group
    task_path: Path
    kernel_path: Path  # the best verified candidate (written by agent.write_best)
    speedup: float  # over eager, on its task, as the evaluator measured it
    run_id: str = ""
    op: object = None  # torch.ops.<ns>.<name>.default once registered
    op_name: str = ""


def _sig(n: fx.Node) -> tuple:
    shape, dtype, _ = n.meta["ks_tensor"]
    return tuple(shape), str(dtype).replace("torch.", "")


def param_sig(gm: fx.GraphModule, p: fx.Node) -> tuple:
    obj = gm
    for part in str(p.target).split("."):
        obj = getattr(obj, part)
    return tuple(obj.shape), str(obj.dtype).replace("torch.", "")


def namespace(model_name: str, winners: list[Winner]) -> str:
    """ks_<model>_<hash of the installed kernels>: a new set of kernels gets a new namespace."""
    h = hashlib.sha256("".join(sorted(w.kernel_path.read_text() for w in winners)).encode()).hexdigest()[:8]
    return re.sub(r"\W+", "_", f"ks_{model_name}").lower().strip("_") + f"_{h}"


def make_kernel(gm: fx.GraphModule, w: Winner) -> Kernel:
    return Kernel(w.group.slug, w.kernel_path, w.task_path, [_sig(n) for n in w.group.inputs],
                  [param_sig(gm, p) for p in w.group.params])


def register_winners(cap: Captured, winners: list[Winner], ns: str) -> None:
    for w in winners:
        w.op_name = w.group.slug
        w.op = register(ns, w.op_name, make_kernel(cap.gm, w))


def rewrite(cap: Captured, winners: list[Winner]) -> fx.GraphModule:
    """A new GraphModule over the original module's parameters (shared, not copied) in
    which each winner's group is one call of its op."""
    g = fx.Graph()
    env: dict = {}
    out = g.graph_copy(cap.graph, env)
    g.output(out)
    for w in winners:
        nodes = [env[n] for n in w.group.nodes]
        root = nodes[-1]
        with g.inserting_before(root):
            call = g.call_function(w.op, tuple(env[n] for n in w.group.inputs) + tuple(env[p] for p in w.group.params))
        call.meta["ks_label"] = f"kernelsmith:{w.op_name}"
        root.replace_all_uses_with(call)
        for n in reversed(nodes):
            if not n.users:
                g.erase_node(n)
    g.eliminate_dead_code()
    g.lint()
    return fx.GraphModule(cap.gm, g)


def optimized_module(cap: Captured, winners: list[Winner], original, ns: str) -> Guarded:
    """The drop-in module: the rewritten graph for the verified inputs, else `original`."""
    register_winners(cap, winners, ns)
    gm = rewrite(cap, winners)
    desc = ", ".join(f"{w.op_name} {w.speedup:.2f}x" for w in winners) or "no kernel installed"
    return Guarded(original, gm, [(tuple(x.shape), str(x.dtype).replace("torch.", "")) for x in cap.inputs], desc)
