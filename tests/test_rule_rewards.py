"""The rule-based reward (rewards/rules.py) on real completions, and its combinations with
the execution reward, as the reward server and trainers call them."""

from __future__ import annotations

from pathlib import Path

import pytest

import rewards
from kernelsmith.results import EvalResult, Verdict
from rewards.rules import check
from tests.search.search_fakes import compile_error, correct, incorrect

ROOT = Path(__file__).resolve().parents[1]
SOL = ROOT / "tests" / "fixtures" / "solutions"
COMP = ROOT / "tests" / "fixtures" / "completions"
CUPY = (SOL / "hpc_001_axpy" / "correct_cupy.py").read_text()
INLINE = (SOL / "level1_004_matmul" / "correct_inline.py").read_text()
TRITON = (COMP / "triton_axpy.py").read_text()
NUMBA = (COMP / "numba_axpy.py").read_text()
PYCUDA = (COMP / "pycuda_axpy.py").read_text()
AXPY_TASK = (ROOT / "tasks" / "hpc" / "level1" / "001_axpy.py").read_text()
TORCH_ONLY = ("Here is a faster version:\n```python\nimport torch\nimport torch.nn as nn\n\n"
              "class ModelNew(nn.Module):\n    def __init__(self, a):\n        super().__init__()\n        self.a = a\n\n"
              "    def forward(self, x, y):\n        return torch.addmv(y, x.view(1, -1).T, x[:1])\n```\n")


def fenced(code: str) -> str:
    return f"I wrote a kernel.\n```python\n{code}```\nIt should be fast."


@pytest.mark.parametrize("code,lang", [(CUPY, "cupy"), (INLINE, "cuda"), (TRITON, "triton"), (NUMBA, "numba"),
                                       (PYCUDA, "pycuda")])
def test_real_kernels_in_each_language_pass_every_rule(code, lang):
    for completion in (code, fenced(code), [{"role": "assistant", "content": fenced(code)}]):
        v = check(completion, lang, AXPY_TASK)
        assert v.passed and v.score == 1.0 and v.language == lang and v.reasons == [], v


def test_wrong_target_language_fails_the_language_and_kernel_checks():
    v = check(fenced(TRITON), "cupy")
    assert v.language == "triton" and not v.checks["language"] and v.score == 0.25
    assert any("written in triton, not cupy" in r for r in v.reasons)


def test_torch_only_completion_scores_zero_with_reasons():
    v = check(TORCH_ONLY, "cupy", AXPY_TASK)
    assert v.score == 0.0 and v.language == ""
    assert any("torch-compute" in r and "addmv" in r for r in v.reasons)


def test_torch_on_the_hot_path_beside_a_real_kernel_is_caught():
    hybrid = TRITON.replace("        return out\n", "        return out + torch.mv(x.view(1, -1).T, y[:1])\n")
    v = check(hybrid, "triton")
    assert v.checks == {"language": True, "kernel_defined": True, "kernel_launched": True,
                        "no_torch_hot_path": False}
    assert v.score == 0.75 and "torch.mv" in " ".join(v.reasons)


def test_fallback_around_the_kernel_is_caught():
    fb = CUPY.replace("        with _stream():\n",
                      "        try:\n            pass\n        except Exception:\n            return self.a * x + y\n"
                      "        with _stream():\n")
    v = check(fb, "cupy")
    assert not v.checks["no_torch_hot_path"] and any(r.startswith("fallback") for r in v.reasons)


def test_kernel_defined_but_never_launched():
    unused = TRITON.replace("        _axpy_kernel[(triton.cdiv(n, 1024),)](x, y, out, self.a, n, BLOCK=1024)\n",
                            "        out.copy_(y)\n")
    v = check(unused, "triton")
    assert v.checks["kernel_defined"] and not v.checks["kernel_launched"]
    assert "no triton kernel is launched from forward" in v.reasons


def test_no_code_and_bad_code():
    assert check("I cannot do this.").score == 0.0
    assert check("```python\ndef f(:\n```").score == 0.0
    with pytest.raises(ValueError, match="unknown language"):
        check(CUPY, "cobol")


def test_rule_reward_batches_with_per_item_languages():
    fn = rewards.get("rule")
    out = fn([CUPY, TRITON, TORCH_ONLY], [None] * 3, language=["cupy", "cupy", "cupy"])
    assert out == [1.0, 0.25, 0.0]
    assert fn([TRITON], [None]) == [1.0]  # no target: any kernel language
    with pytest.raises(ValueError, match="2 values for 1"):
        fn([CUPY], [None], language=["cupy", "triton"])


def test_rule_gate_is_autotriton_style():
    fn = rewards.get("rule_gate")
    res = [correct(3.0), correct(3.0), incorrect(), compile_error()]
    out = fn([CUPY, TORCH_ONLY, CUPY, CUPY], res, language="cupy")
    assert out == pytest.approx([1.0, 0.0, 0.3, 0.0])  # staged: correct and 3x faster = 1.0
    # configurable: another execution reward, a softer threshold, a custom failure value
    out = fn([TRITON, TRITON], [correct(2.0), correct(2.0)], language=["triton", "cupy"], exec_reward="speedup",
             threshold=0.2, fail=-1.0)
    assert out == [2.0, 2.0]  # 0.25 >= 0.2 passes the softened gate
    out = fn([TRITON], [correct(2.0)], language="cupy", exec_reward="speedup", fail=-1.0)
    assert out == [-1.0]
    invalid = EvalResult(Verdict.INVALID_TASK, "t", "c")
    assert fn([CUPY], [invalid]) == [None]  # the execution reward's None passes through


def test_rule_sum_weights_both_parts():
    fn = rewards.get("rule_sum")
    out = fn([CUPY, TORCH_ONLY], [correct(1.5), correct(1.5)], language="cupy", weight=0.25)
    # staged(1.5x) = 0.6 + 0.4 * 0.5 = 0.8
    assert out == pytest.approx([0.25 * 1.0 + 0.75 * 0.8, 0.25 * 0.0 + 0.75 * 0.8])
    assert all(0.0 <= v <= 1.0 for v in out)
    with pytest.raises(ValueError, match="weight"):
        fn([CUPY], [correct(1.5)], weight=2.0)


def test_registry_names_the_rule_rewards():
    assert {"rule", "rule_gate", "rule_sum"} <= set(rewards.names())
