"""The rule rewards through the reward server (`--reward rule_gate`, or named per request) and
the TRL adapter, evaluators faked (no GPU): the execution verdict comes from the kernel's tag."""

from __future__ import annotations

from pathlib import Path

import pytest

from kernelsmith.cli.serve import build_server
from kernelsmith.serve.adapters import make_trl_reward
from serve_fakes import TOKEN, Fakes, correct, request, write_tasks

CUPY = (Path(__file__).resolve().parents[1] / "fixtures" / "solutions" / "hpc_001_axpy" / "correct_cupy.py").read_text()
FAST_CUPY = CUPY.replace('import cupy as cp\n', 'import cupy as cp\n# kernel: fast\n')
FAST_TORCH = ("import torch\nimport torch.nn as nn\n# kernel: fast\nclass ModelNew(nn.Module):\n"
              "    def forward(self, x):\n        return torch.relu(x)\n")


@pytest.fixture
def server(tmp_path):
    fakes = Fakes({"fast": correct(3.0)})
    service, srv = build_server([write_tasks(tmp_path / "s")], port=0, gpus=[0], evaluator_factory=fakes.factory,
                                token=TOKEN, reward="rule_gate")
    srv.serve_in_thread()
    yield srv.url
    srv.shutdown()
    srv.server_close()
    service.close()


def test_server_default_rule_gate_zeroes_a_fast_torch_fallback(server):
    status, body = request(server, "POST", "/v1/score", {"items": [
        {"task": "relu", "code": FAST_CUPY}, {"task": "relu", "code": FAST_TORCH}]})
    assert status == 200, body
    r = body["results"]
    assert r[0]["verdict"] == r[1]["verdict"] == "correct"  # both "ran fast" for the fake evaluator
    assert r[0]["reward"] == pytest.approx(1.0) and r[1]["reward"] == 0.0  # only the real kernel is rewarded


def test_request_names_rule_sum_with_kwargs(server):
    status, body = request(server, "POST", "/v1/score", {
        "items": [{"task": "relu", "code": FAST_TORCH}], "reward": "rule_sum",
        "reward_kwargs": {"weight": 0.5, "language": "cupy"}})
    assert status == 200, body
    assert body["results"][0]["reward"] == pytest.approx(0.5 * 0.0 + 0.5 * 1.0)


def test_trl_adapter_with_rule_gate(server):
    fn = make_trl_reward(server, TOKEN, reward="rule_gate")
    out = fn(prompts=["p", "p"], completions=[f"```python\n{FAST_CUPY}```", f"```python\n{FAST_TORCH}```"],
             task=["relu", "relu"])
    assert out == pytest.approx([1.0, 0.0])


def test_trl_adapter_passes_a_language_column(server):
    fn = make_trl_reward(server, TOKEN, reward="rule_gate", kwarg_columns=("language",))
    out = fn(prompts=["p", "p"], completions=[FAST_CUPY, FAST_CUPY], task=["relu", "relu"],
             language=["cupy", "triton"])
    assert out == pytest.approx([1.0, 0.0])  # the second asked for Triton and got CuPy
    with pytest.raises(ValueError, match="no 'language' column"):
        fn(prompts=["p"], completions=[FAST_CUPY], task=["relu"])


def test_verl_compute_score_takes_the_language_from_extra_info(server, monkeypatch):
    from kernelsmith.serve.adapters import compute_score

    monkeypatch.setenv("KERNELSMITH_SERVE_URL", server)
    monkeypatch.setenv("KERNELSMITH_SERVE_TOKEN", TOKEN)
    monkeypatch.setenv("KERNELSMITH_SERVE_REWARD", "rule_gate")
    assert compute_score("hpc", FAST_CUPY, "relu", {"language": "cupy"}) == pytest.approx(1.0)
    assert compute_score("hpc", FAST_CUPY, "relu", {"language": "numba"}) == 0.0
