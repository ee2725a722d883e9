"""Graph capture: a module and example inputs -> a torch.fx graph of functional ops with
every tensor's real shape and dtype.

torch.fx traces the module's own Python (user modules are traced through); the standard
torch.nn layers it meets are lowered to their functional form (`nn.Linear` ->
`F.linear(x, weight, bias)`, parameters as `get_attr` nodes), so every node is one
operator whose inputs are activations, parameters or constants. A torch.nn layer outside
the table below is an unsupported module (a clear error, not a silent fallback): its
semantics would otherwise have to be guessed. The graph is then run once on the example
inputs to record each node's value (tensor metadata; Python numbers as constants) and to
check that the captured graph computes what the module computes.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.fx as fx
import torch.nn as nn
import torch.nn.functional as F

from kernelsmith.model import runtime
from kernelsmith.model.errors import ModelError

CONTAINERS = (nn.Sequential, nn.ModuleList, nn.ModuleDict)
# ops whose output shape depends on input values: kernels are verified at one static shape
DATA_DEPENDENT = {"nonzero", "unique", "masked_select", "unique_consecutive", "bincount", "repeat_interleave"}


def _lower(m: nn.Module):
    """(function, args after the input, kwargs, parameter names) of a supported layer, or
    "identity"; None when the layer is not supported. Parameter names are attributes of m."""
    if isinstance(m, (nn.Identity, nn.Dropout, nn.Dropout1d, nn.Dropout2d)):
        return "identity"
    if isinstance(m, nn.Linear):
        return F.linear, [], {}, ["weight", "bias"]
    if isinstance(m, (nn.Conv1d, nn.Conv2d)) and m.padding_mode == "zeros":
        fn = F.conv1d if isinstance(m, nn.Conv1d) else F.conv2d
        return fn, [], {"stride": m.stride, "padding": m.padding, "dilation": m.dilation, "groups": m.groups}, \
            ["weight", "bias"]
    if isinstance(m, nn.LayerNorm):
        return F.layer_norm, [tuple(m.normalized_shape)], {"eps": m.eps}, ["weight", "bias"]
    if isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)) and m.track_running_stats:
        return F.batch_norm, [], {"training": False, "momentum": 0.0, "eps": m.eps}, \
            ["running_mean", "running_var", "weight", "bias"]
    if isinstance(m, nn.GroupNorm):
        return F.group_norm, [m.num_groups], {"eps": m.eps}, ["weight", "bias"]
    simple = {nn.ReLU: F.relu, nn.SiLU: F.silu, nn.Sigmoid: torch.sigmoid, nn.Tanh: torch.tanh, nn.Mish: F.mish}
    for cls, fn in simple.items():
        if type(m) is cls:
            return fn, [], {}, []
    if isinstance(m, nn.GELU):
        return F.gelu, [], {"approximate": m.approximate}, []
    if isinstance(m, nn.LeakyReLU):
        return F.leaky_relu, [m.negative_slope], {}, []
    if isinstance(m, nn.Softmax):
        return F.softmax, [], {"dim": m.dim}, []
    if isinstance(m, nn.MaxPool2d):
        return F.max_pool2d, [m.kernel_size, m.stride, m.padding, m.dilation, m.ceil_mode], {}, []
    if isinstance(m, nn.AvgPool2d):
        return F.avg_pool2d, [m.kernel_size, m.stride, m.padding, m.ceil_mode, m.count_include_pad], {}, []
    if isinstance(m, nn.AdaptiveAvgPool2d):
        return F.adaptive_avg_pool2d, [m.output_size], {}, []
    if isinstance(m, nn.Flatten):
        return torch.flatten, [m.start_dim, m.end_dim], {}, []
    if isinstance(m, nn.Embedding) and m.max_norm is None:
        return "embedding", [], {}, ["weight"]
    return None


SUPPORTED = ("Linear, Conv1d, Conv2d (zero padding), LayerNorm, BatchNorm1d/2d (running stats), GroupNorm, ReLU, "
             "GELU, SiLU, Sigmoid, Tanh, Mish, LeakyReLU, Softmax, MaxPool2d, AvgPool2d, AdaptiveAvgPool2d, "
             "Flatten, Embedding, Dropout and Identity (eval mode)")


class _Tracer(fx.Tracer):
    """Standard torch.nn layers are leaves (lowered afterwards); containers and user
    modules are traced through."""

    def is_leaf_module(self, m: nn.Module, qualname: str) -> bool:
        return type(m).__module__.startswith("torch.nn") and not isinstance(m, CONTAINERS)


@dataclass
class Captured:
    gm: fx.GraphModule
    inputs: list  # the example inputs the values were recorded on
    output: object  # the module's own output on them

    @property
    def graph(self) -> fx.Graph:
        return self.gm.graph


def label(node: fx.Node) -> str:
    """A node's stable name: the module path of a lowered layer (`fc1`, `blocks.0.ln`), else
    fx's name (`softmax`, `add_1`): both follow from the model's code, not from the run."""
    return node.meta.get("ks_label") or node.name


def check_inputs(example_inputs, need_cuda: bool = True) -> list:
    """The example inputs as a list of tensors, or a ModelError saying what is wrong."""
    if isinstance(example_inputs, torch.Tensor):
        example_inputs = [example_inputs]
    if not isinstance(example_inputs, (list, tuple)) or not example_inputs:
        raise ModelError("example_inputs must be a tensor or a non-empty list/tuple of tensors (the forward's "
                         f"positional arguments); got {type(example_inputs).__name__}")
    xs = list(example_inputs)
    for i, x in enumerate(xs):
        if isinstance(x, (list, tuple)) and x and all(isinstance(y, torch.Tensor) for y in x):
            raise ModelError(f"example input {i} is a list of tensors: give one set of example inputs (dynamic "
                             "shapes are not supported: kernels are verified at the shapes of the examples)")
        if not isinstance(x, torch.Tensor):
            raise ModelError(f"example input {i} is a {type(x).__name__}, not a tensor: pass only tensors "
                             "(bake Python constants into the module)")
        if any(not isinstance(s, int) for s in x.shape):
            raise ModelError(f"example input {i} has a symbolic shape {tuple(x.shape)}: dynamic shapes are not "
                             "supported; give concrete example tensors")
        if x.is_sparse or x.layout != torch.strided:
            raise ModelError(f"example input {i} is a {x.layout} tensor: only dense (strided) tensors are supported")
        if need_cuda and x.device.type != runtime.DEVICE_TYPE:
            raise ModelError(f"example input {i} is on {x.device}, not a CUDA device: kernels are verified on the "
                             "GPU, so pass CUDA tensors (x.cuda()) and a module on the GPU (module.cuda())")
    devices = {x.device for x in xs}
    if len(devices) > 1:
        raise ModelError(f"the example inputs are on several devices ({', '.join(map(str, devices))}): use one GPU")
    return xs


def check_module(module) -> None:
    if not isinstance(module, nn.Module):
        raise ModelError(f"expected a torch.nn.Module, got {type(module).__name__}")
    if module.training:
        raise ModelError("the module is in training mode: call module.eval() first (kernels are verified for "
                         "inference: no autograd, dropout off, batch norm on running statistics)")
    if isinstance(module, (torch.jit.ScriptModule, getattr(torch.jit, "RecursiveScriptModule", ()))):
        raise ModelError("TorchScript modules are not supported: pass the eager nn.Module")


def _functionalize(gm: fx.GraphModule) -> None:
    """Lower every call_module node to a functional call on get_attr parameters."""
    g = gm.graph
    attrs: dict[str, fx.Node] = {}
    mods = dict(gm.named_modules())
    for n in list(g.nodes):
        if n.op != "call_module":
            continue
        m = mods[n.target]
        low = _lower(m)
        if low is None:
            raise ModelError(f"unsupported module {type(m).__module__}.{type(m).__name__} at '{n.target}': "
                             f"supported torch.nn layers are {SUPPORTED}; write it with torch functions instead")
        if len(n.args) != 1 or n.kwargs:
            raise ModelError(f"module '{n.target}' is called with {len(n.args)} positional and {len(n.kwargs)} keyword "
                             "arguments; supported layers take one tensor")
        if low == "identity":
            n.replace_all_uses_with(n.args[0])
            g.erase_node(n)
            continue
        fn, extra, kwargs, pnames = low
        with g.inserting_before(n):
            params = []
            for p in pnames:
                if getattr(m, p) is None:
                    params.append(None)
                    continue
                target = f"{n.target}.{p}"
                if target not in attrs:  # made before its first use; later uses come after it
                    attrs[target] = g.get_attr(target)
                params.append(attrs[target])
            if fn == "embedding":
                new = g.call_function(F.embedding, (n.args[0], params[0]),
                                      {"padding_idx": m.padding_idx})
            elif fn is F.linear:
                new = g.call_function(F.linear, (n.args[0], params[0], params[1]))
            elif fn in (F.conv1d, F.conv2d):
                new = g.call_function(fn, (n.args[0], params[0], params[1]), kwargs)
            elif fn is F.layer_norm:
                new = g.call_function(fn, (n.args[0], extra[0], params[0], params[1]), kwargs)
            elif fn is F.batch_norm:
                new = g.call_function(fn, (n.args[0], *params), kwargs)
            elif fn is F.group_norm:
                new = g.call_function(fn, (n.args[0], extra[0], params[0], params[1]), kwargs)
            else:
                new = g.call_function(fn, (n.args[0], *extra), kwargs)
        new.meta["ks_label"] = n.target
        n.replace_all_uses_with(new)
        g.erase_node(n)
    g.lint()
    gm.recompile()


class _Recorder(fx.Interpreter):
    """Runs the graph once, keeping in each node's meta what it produced: `ks_tensor`
    (shape, dtype, device) for a tensor, `ks_const` for a Python number/shape."""

    def run_node(self, n):
        out = super().run_node(n)
        if isinstance(out, torch.Tensor):
            n.meta["ks_tensor"] = (tuple(out.shape), out.dtype, out.device)
            if not out.is_floating_point() and out.dtype != torch.bool and out.numel():
                n.meta["ks_range"] = (int(out.min()), int(out.max()))
        elif isinstance(out, (int, float, bool, torch.Size)) or (
                isinstance(out, (tuple, list)) and all(isinstance(v, (int, float, bool)) for v in out)):
            n.meta["ks_const"] = tuple(out) if isinstance(out, (torch.Size, list)) else out
        return out


def op_name(node: fx.Node) -> str:
    """`softmax`, `linear`, `add`: the operator a call node runs."""
    t = node.target
    if node.op == "call_method":
        return str(t)
    name = getattr(t, "__name__", str(t))
    return name.strip("_")


def capture(module: nn.Module, example_inputs, need_cuda: bool = True) -> Captured:
    """Trace, lower and record `module` on `example_inputs` (see the module docstring)."""
    check_module(module)
    xs = check_inputs(example_inputs, need_cuda)
    try:
        graph = _Tracer().trace(module)
    except ModelError:
        raise
    except Exception as exc:  # noqa: BLE001 - fx raises TraceError, TypeError, RuntimeError ...
        raise ModelError(f"cannot capture {type(module).__name__}'s graph with torch.fx ({type(exc).__name__}: "
                         f"{str(exc).splitlines()[0] if str(exc) else ''}); data-dependent control flow (if/for on "
                         "tensor values) is not supported: write it with torch.where / masks") from None
    gm = fx.GraphModule(module, graph)
    _functionalize(gm)
    placeholders = [n for n in gm.graph.nodes if n.op == "placeholder"]
    if len(placeholders) != len(xs):
        raise ModelError(f"{type(module).__name__}.forward takes {len(placeholders)} inputs, "
                         f"{len(xs)} example inputs were given")
    for n in gm.graph.nodes:
        if n.op in ("call_function", "call_method") and op_name(n) in DATA_DEPENDENT:
            raise ModelError(f"node {label(n)} ({op_name(n)}) has an output shape that depends on the input's values: "
                             "dynamic shapes are not supported (kernels are verified at one static shape)")
    with torch.no_grad():
        want = module(*xs)
        got = _Recorder(gm).run(*xs)
    if not _same(want, got):
        raise ModelError(f"the captured graph of {type(module).__name__} does not reproduce its forward "
                         "(a side effect, randomness or state the trace cannot see?)")
    return Captured(gm, xs, want)


def _same(a, b) -> bool:
    if isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor):
        return a.shape == b.shape and a.dtype == b.dtype and bool(torch.allclose(a, b, rtol=1e-5, atol=1e-6,
                                                                                equal_nan=True))
    if isinstance(a, (tuple, list)) and isinstance(b, (tuple, list)):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    return a == b


# ops that only view or rearrange memory: never the work of a kernel
SHAPE_OPS = {"view", "reshape", "transpose", "permute", "contiguous", "split", "chunk", "getitem", "unsqueeze",
             "squeeze", "flatten", "expand", "size", "getattr", "t", "narrow", "unbind", "view_as", "expand_as",
             "detach", "type_as", "to", "float", "half", "clone"}
