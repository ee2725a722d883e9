"""From a captured graph to candidate subgraphs: classify each node, fuse chains, rank by time.

Kinds of node (by the operator they run):
- heavy: GEMM and convolution (linear, matmul, bmm, conv): each is a group of its own;
- fusable: elementwise, normalization, softmax, reductions, pooling;
- shape: views and rearrangements (view, transpose, split ...): never in a group, they stay
  PyTorch ops (a group's inputs may be views; the runtime makes them contiguous);
- const: nodes computing Python numbers (x.shape[0] // 8): baked into a group as constants;
- other: any other tensor op (embedding, cat ...): a group of its own.

Fusion: a fusable node joins the group of its fusable consumer when that consumer is its
only user, so every group is a tree with one output (its root) and nothing inside a group
is needed outside it. Each group's key is the labels of its nodes joined by "+": it follows
from the model's code (module paths, fx names), so the same model gives the same keys on
every machine (a generations file is keyed by them).
"""

from __future__ import annotations

import re
import statistics
import time
from dataclasses import dataclass, field

import torch
import torch.fx as fx

from kernelsmith.model.capture import SHAPE_OPS, label, op_name

HEAVY = {"linear", "conv1d", "conv2d", "matmul", "bmm", "mm", "baddbmm", "addmm", "einsum"}
FUSABLE = set("""add sub mul truediv div neg relu gelu silu sigmoid tanh exp log sqrt rsqrt abs clamp clamp_min
clamp_max pow leaky_relu mish softplus elu hardtanh dropout layer_norm batch_norm group_norm softmax log_softmax
mean sum amax amin max_pool2d avg_pool2d adaptive_avg_pool2d where masked_fill maximum minimum erf square
relu_ add_ mul_ iadd imul""".split())
IN_PLACE = {"relu_", "add_", "mul_", "iadd", "imul"}


def kind(node: fx.Node) -> str:
    if node.op not in ("call_function", "call_method"):
        return node.op
    if "ks_const" in node.meta or "ks_tensor" not in node.meta:
        return "const" if "ks_const" in node.meta else "shape"
    name = op_name(node)
    if name in SHAPE_OPS:
        return "shape"
    if name in HEAVY:
        return "heavy"
    if name in FUSABLE and name not in IN_PLACE:
        return "fusable"
    return "other"


@dataclass
class Group:
    nodes: list  # fx nodes in graph order; the last is the root (the output)
    kind: str  # fused | heavy | other | module
    inputs: list = field(default_factory=list)  # tensor nodes from outside, in first-use order
    params: list = field(default_factory=list)  # get_attr nodes
    consts: dict = field(default_factory=dict)  # node -> Python value baked in
    ms: float = 0.0  # measured time of its nodes per forward
    why_not: str = ""  # non-empty: cannot become a task

    @property
    def root(self) -> fx.Node:
        return self.nodes[-1]

    @property
    def key(self) -> str:
        return "+".join(label(n) for n in self.nodes)

    @property
    def ops(self) -> list[str]:
        return [op_name(n) for n in self.nodes]

    @property
    def slug(self) -> str:
        s = re.sub(r"[^0-9A-Za-z]+", "_", self.key).strip("_").lower()
        return s if len(s) <= 60 else s[:48] + "_" + str(abs(hash(self.key)) % 10 ** 8)

    def describe(self) -> str:
        ops = [op_name(n) for n in self.nodes if kind(n) not in ("shape", "const")]
        ops = ops if len(ops) <= 12 else ops[:11] + [f"... ({len(ops) - 11} more)"]
        shapes = ", ".join(f"{tuple(n.meta['ks_tensor'][0])}" for n in self.inputs)
        out = self.root.meta.get("ks_tensor")
        dtype = str(out[1]).replace("torch.", "") if out else "?"
        return f"{' -> '.join(ops)} on {shapes or 'parameters'} ({dtype})"


def _externals(nodes: list) -> tuple[list, list, dict, str]:
    inside = set(nodes)
    inputs, params, consts, why = [], [], {}, ""
    for n in nodes:
        for a in n.all_input_nodes:
            if a in inside:
                continue
            if a.op == "get_attr":
                if a not in params:
                    params.append(a)
            elif "ks_tensor" in a.meta:
                if a not in inputs:
                    inputs.append(a)
            elif "ks_const" in a.meta:
                consts[a] = a.meta["ks_const"]
            else:
                why = f"input {label(a)} of {label(n)} is neither a tensor nor a constant"
    return inputs, params, consts, why


def _make(nodes: list, k: str) -> Group:
    inputs, params, consts, why = _externals(nodes)
    g = Group(nodes, k, inputs, params, consts, why_not=why)
    if not g.why_not and "ks_tensor" not in g.root.meta:
        g.why_not = "its output is not a single tensor"
    if not g.why_not and any(op_name(n) == "dropout" and (n.kwargs.get("training", len(n.args) > 2 and n.args[2]))
                             for n in nodes):
        g.why_not = "dropout in training mode is random"
    if not g.why_not and not g.inputs:
        g.why_not = "it has no tensor input (a function of the parameters only)"
    return g


def find_groups(graph: fx.Graph) -> list[Group]:
    """The candidate subgraphs of a captured graph, in graph order."""
    order = {n: i for i, n in enumerate(graph.nodes)}
    owner: dict[fx.Node, list] = {}
    for n in graph.nodes:
        k = kind(n)
        if k not in ("fusable", "heavy", "other"):
            continue
        members = [n]
        if k == "fusable":
            for a in n.all_input_nodes:
                if kind(a) == "fusable" and len(a.users) == 1 and a in owner:
                    members += owner[a]
        members = sorted(set(members), key=order.__getitem__)
        for m in members:
            owner[m] = members
    seen, groups = set(), []
    for n in graph.nodes:
        if n in owner and id(owner[n]) not in seen:
            seen.add(id(owner[n]))
            members = owner[n]
            groups.append(_make(members, "fused" if kind(members[-1]) == "fusable" else kind(members[-1])))
    return groups


def whole_graph(graph: fx.Graph) -> Group:
    """Every computing node of the graph as one group (the task of `kernelsmith.optimize`)."""
    nodes = [n for n in graph.nodes if n.op in ("call_function", "call_method")]
    g = Group(nodes, "module")
    g.inputs = [n for n in graph.nodes if n.op == "placeholder"]
    g.params = [n for n in graph.nodes if n.op == "get_attr" and n.users]
    return g


# -- profiling -------------------------------------------------------------------------------
class _Timer(fx.Interpreter):
    """Times every node: CUDA events around each (no sync in between, so the GPU's queue stays
    full and each gap is the node's GPU time) on a GPU; wall time on a CPU."""

    def __init__(self, gm, cuda: bool):
        super().__init__(gm)
        self.cuda = cuda
        self.marks: list = []

    def run_node(self, n):
        if n.op not in ("call_function", "call_method"):
            return super().run_node(n)
        if self.cuda:
            a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            a.record()
            out = super().run_node(n)
            b.record()
            self.marks.append((n, a, b))
        else:
            t0 = time.perf_counter()
            out = super().run_node(n)
            self.marks.append((n, t0, time.perf_counter()))
        return out


def node_times(gm: fx.GraphModule, inputs: list, runs: int = 5, warmup: int = 2) -> dict:
    """Median milliseconds of each computing node per forward."""
    cuda = any(isinstance(x, torch.Tensor) and x.is_cuda for x in inputs)
    per: dict = {}
    with torch.no_grad():
        for i in range(warmup + runs):
            t = _Timer(gm, cuda)
            t.run(*inputs)
            if cuda:
                torch.cuda.synchronize()
            if i < warmup:
                continue
            for n, a, b in t.marks:
                per.setdefault(n, []).append(a.elapsed_time(b) if cuda else (b - a) * 1e3)
    return {n: statistics.median(v) for n, v in per.items()}


def rank(groups: list[Group], times: dict) -> list[Group]:
    """Groups with their measured time, hottest first (ties: graph order)."""
    for g in groups:
        g.ms = sum(times.get(n, 0.0) for n in g.nodes)
    return sorted(groups, key=lambda g: -g.ms)
