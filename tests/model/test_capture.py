"""Capture, groups and task files on the CPU: real shapes and dtypes, deterministic keys and
sources, and clear errors for what is not supported."""

from __future__ import annotations

import importlib.util

import pytest
import torch
import torch.nn as nn

from kernelsmith.model.capture import capture
from kernelsmith.model.errors import ModelError
from kernelsmith.model.groups import find_groups
from kernelsmith.model.pipeline import load_model_file, plan
from kernelsmith.model.taskgen import write_task
from kernelsmith.task import Task
from tests.model.common import tiny


def _load(path):
    spec = importlib.util.spec_from_file_location(f"t_{path.stem}", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_groups_of_the_tiny_model():
    m, xs = tiny()
    cap = capture(m, xs, need_cuda=False)
    groups = {g.key: g for g in find_groups(cap.graph)}
    assert set(groups) == {"fc", "ln+act+mul"}
    g = groups["ln+act+mul"]
    assert g.kind == "fused" and g.ops == ["layer_norm", "gelu", "mul"]
    assert [n.meta["ks_tensor"][0] for n in g.inputs] == [(4, 8, 32)]
    assert [str(p.target) for p in g.params] == ["ln.weight", "ln.bias"]


def test_task_file_reproduces_the_group_with_the_models_weights(tmp_path):
    m, xs = tiny()
    cap = capture(m, xs, need_cuda=False)
    g = next(g for g in find_groups(cap.graph) if g.key == "ln+act+mul")
    tf = write_task(cap.gm, g, tmp_path / "t.py", "ln of tiny", "test")
    Task.load(tf.path)  # a valid KernelBench task
    mod = _load(tf.path)
    init = mod.get_init_inputs()
    assert torch.equal(init[0], m.ln.weight) and torch.equal(init[1], m.ln.bias)
    (x,) = mod.get_inputs()
    assert x.shape == (4, 8, 32) and x.dtype == torch.float32
    want = m.act(m.ln(x)) * 2.0
    torch.testing.assert_close(mod.Model(*init)(x), want)
    # the weights are pinned: a changed file is refused
    data = bytearray(tf.weights.read_bytes())
    data[len(data) // 2] ^= 0xFF
    tf.weights.write_bytes(bytes(data))
    with pytest.raises(RuntimeError, match="SHA-256"):
        mod.get_init_inputs()


def test_example_models_give_the_same_keys_and_tasks_every_time(tmp_path):
    """The generations files are keyed by group; the keys and the task sources must not depend
    on the run (only the measured ranking does)."""
    from examples.models.build_generations import GENERATIONS

    for name in ("tiny_transformer", "small_convnet"):
        texts = []
        for i in range(2):
            m, xs, _ = load_model_file(f"examples/models/{name}.py", device=None)
            cap = capture(m, xs, need_cuda=False)
            keys = {g.key: g for g in find_groups(cap.graph)}
            assert set(GENERATIONS[name]) <= set(keys), name
            texts.append({k: write_task(cap.gm, keys[k], tmp_path / f"{i}" / f"{keys[k].slug}.py", k, name)
                          .path.read_text() for k in GENERATIONS[name]})
        assert texts[0] == texts[1]


def test_whole_module_task_and_exported_forward_replay_the_transformer(tmp_path):
    """Names torch.fx wraps (math.sqrt of a shape) are imported by the task file and by an
    exported package's forward."""
    from kernelsmith.model.export import forward_module
    from kernelsmith.model.groups import whole_graph

    m, xs, _ = load_model_file("examples/models/tiny_transformer.py", device=None)
    cap = capture(m, xs, need_cuda=False)
    tf = write_task(cap.gm, whole_graph(cap.graph), tmp_path / "whole.py", "whole", "test")
    text = tf.path.read_text()
    assert "from math import sqrt as math_sqrt" in text and "_symbolic_trace.wrap" not in text
    mod = _load(tf.path)
    with torch.no_grad():
        want = m(*xs)
        torch.testing.assert_close(mod.Model(*mod.get_init_inputs())(*xs), want)
        ns = {}
        exec(compile(forward_module(cap.gm), "forward.py", "exec"), ns)
        torch.testing.assert_close(ns["forward"](m, *xs), want)


def test_generations_files_are_built_from_the_kernels():
    from examples.models import build_generations as b

    for name in b.GENERATIONS:
        assert (b.HERE / f"{name}_generations.jsonl").read_text() == b.text(name), \
            "run python3 examples/models/build_generations.py"
    assert b.API_REPLIES.read_text() == b.api_replies()


def test_plan_picks_the_hottest_and_only_checks_keys():
    m, xs = tiny()
    cap = capture(m, xs, need_cuda=False)
    ranked, chosen, total = plan(cap, top=1)
    assert len(chosen) == 1 and chosen[0] is ranked[0] and total > 0
    with pytest.raises(ModelError, match="no group 'nope'.*fc"):
        plan(cap, top=1, only=["nope"])


class Branchy(nn.Module):
    def forward(self, x):
        if x.sum() > 0:
            return x * 2
        return x


class WithLSTM(nn.Module):
    def __init__(self):
        super().__init__()
        self.rnn = nn.LSTM(8, 8)

    def forward(self, x):
        return self.rnn(x)[0]


class Nonzero(nn.Module):
    def forward(self, x):
        return torch.nonzero(x)


@pytest.mark.parametrize("module,inputs,match", [
    (Branchy().eval(), [torch.randn(4)], "data-dependent control flow"),
    (WithLSTM().eval(), [torch.randn(2, 3, 8)], r"unsupported module torch\.nn\.modules\.rnn\.LSTM at 'rnn'"),
    (Nonzero().eval(), [torch.randn(4)], "depends on the input's values: dynamic shapes"),
    (nn.ReLU().eval(), [[torch.randn(2), torch.randn(3)]], "dynamic shapes are not supported"),
    (nn.ReLU().eval(), [3], "is a int, not a tensor"),
    (nn.ReLU().train(), [torch.randn(2)], "training mode"),
    ("not a module", [torch.randn(2)], "expected a torch.nn.Module"),
])
def test_bad_input_gets_a_clear_error(module, inputs, match):
    with pytest.raises(ModelError, match=match):
        capture(module, inputs, need_cuda=False)


def test_cpu_tensors_are_refused_where_kernels_run():
    with pytest.raises(ModelError, match="is on cpu, not a CUDA device"):
        capture(nn.ReLU().eval(), [torch.randn(2)], need_cuda=True)
