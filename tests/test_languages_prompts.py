"""--language: one system prompt and reply format per kernel language (and `any`), feedback
on a kernel written in another language, and the flag on optimize and bench (CPU only: a
loopback OpenAI-compatible server, the tag-keyed fake evaluator, a real SQLite runs.db)."""

from __future__ import annotations

import hashlib
import json

import pytest
from typer.testing import CliRunner

from kernelsmith import languages
from kernelsmith.cli import app
from kernelsmith.prompts import (
    SYSTEM_PROMPT, feedback_section, history_section, language_note, reply_format_section, system_prompt,
)
from kernelsmith.search.base import SearchContext
from kernelsmith.search.types import Candidate
from kernelsmith.store.runs import RunStore
from tests.agent.common import TASK_SRC, kernel_reply
from tests.llm.fake_server import FakeOpenAIServer, Reply
from tests.search.search_fakes import correct

# what builds each language's kernels, as the prompts name it
BUILD = {"cuda": "load_inline", "cupy": "RawKernel", "triton": "@triton.jit", "numba": "@cuda.jit",
         "pycuda": "SourceModule"}
# the default's text: it changes only on purpose (last: issue 15, the fast-build layout for
# load_inline; before that, the text from before prompts became per-language templates)
OLD_DEFAULT_SHA256 = "ccf0f1aa0f230ce7c160aa33366e1cbf36725242dbd16649e1671e9e2348c3a7"


def triton_reply(tag: str) -> str:
    return ("Plan: one program per block.\n```python\nimport torch\nimport torch.nn as nn\nimport triton\n"
            f"import triton.language as tl\n\n# kernel: {tag}\n\n@triton.jit\n"
            "def relu_kernel(x_ptr, y_ptr, n, BLOCK: tl.constexpr):\n"
            "    offs = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)\n    mask = offs < n\n"
            "    tl.store(y_ptr + offs, tl.maximum(tl.load(x_ptr + offs, mask=mask), 0.0), mask=mask)\n\n\n"
            "class ModelNew(nn.Module):\n    def forward(self, x):\n        y = torch.empty_like(x)\n"
            "        n = x.numel()\n        relu_kernel[(triton.cdiv(n, 1024),)](x, y, n, BLOCK=1024)\n"
            "        return y\n```\n")


def test_default_prompt_is_todays():
    assert hashlib.sha256(SYSTEM_PROMPT.encode()).hexdigest() == OLD_DEFAULT_SHA256
    assert system_prompt() == system_prompt("cuda") == system_prompt(" CUDA ") == SYSTEM_PROMPT
    assert "load_inline or cupy.RawKernel" in reply_format_section()
    assert reply_format_section() == reply_format_section(language="cuda")


@pytest.mark.parametrize("lang", languages.names())
def test_each_language_names_its_build_call_and_no_other(lang):
    text = system_prompt(lang)
    own = {lang} | ({"cupy"} if lang == "cuda" else set())  # cuda is CUDA C++ via load_inline or CuPy
    for other, call in BUILD.items():
        assert (call in text) == (other in own), (lang, call)
    reply = reply_format_section(language=lang)
    for other, call in BUILD.items():
        assert (call in reply) == (other in own), (lang, call, reply)
    # the shared rules are in every one
    for needle in ("class ModelNew", "try/except", "current stream", "file, environment, network", "1e-4",
                   "fresh tensors"):
        assert needle in text, (lang, needle)
    assert len(text) < 3500


def test_language_specific_details():
    tri, nb, pc = system_prompt("triton"), system_prompt("numba"), system_prompt("pycuda")
    assert "tl.load" in tri and "mask" in tri and "triton.cdiv" in tri and "autotune" in tri
    assert "from numba import cuda" in nb and "cuda.as_cuda_array" in nb
    assert "cuda.external_stream(torch.cuda.current_stream().cuda_stream)" in nb
    assert "pycuda.autoprimaryctx" in pc and "never pycuda.autoinit" in pc and "no_extern_c=True" in pc
    assert "np.uintp(t.data_ptr())" in pc and "torch.cuda.current_stream().cuda_stream == 0" in pc
    assert "```python" in tri and "```python" in nb and "```python" in pc  # a skeleton each


def test_any_offers_every_language():
    text = system_prompt("any")
    assert all(call in text for call in BUILD.values())
    assert text.count("cupy.RawKernel(src, name)") == 1
    reply = reply_format_section(language="any")
    assert all(call in reply for call in BUILD.values())
    assert len(text) < 4000


def test_unknown_language_is_an_error():
    with pytest.raises(ValueError, match="bogus.*cuda, cupy, triton, numba, pycuda, any"):
        system_prompt("bogus")
    with pytest.raises(ValueError, match="bogus"):
        SearchContext(language="bogus")
    assert languages.check("Triton") == "triton" and languages.choices()[-1] == "any"


def test_feedback_names_a_kernel_in_another_language():
    cupy_code = kernel_reply("fast12").split("```python\n")[1].split("```")[0]
    tri_code = triton_reply("fast15").split("```python\n")[1].split("```")[0]
    assert languages.detect(cupy_code) == "cupy" and languages.detect(tri_code) == "triton"
    cand = Candidate(code=cupy_code, result=correct(1.2))
    note = feedback_section(cand, language="triton")
    assert "written in CuPy (NVRTC)" in note and "asks for Triton" in note and "evaluated all the same" in note
    # the default (cuda) takes CuPy as CUDA; any takes anything; no kernel language at all: the screen says so
    assert "Language:" not in feedback_section(cand) and "Language:" not in feedback_section(cand, language="any")
    assert language_note("import torch\n", "triton") == ""
    assert "Language:" not in feedback_section(Candidate(code=tri_code, result=correct(1.5)), language="triton")
    assert "written in Triton" in language_note(tri_code, "cuda")
    hist = history_section([Candidate(code=tri_code, result=correct(1.5)), cand], language="any")
    assert "Kernel 1: triton, correct" in hist and "Kernel 2: cupy, correct" in hist
    hist = history_section([Candidate(code=tri_code, result=correct(1.5)), cand], language="triton")
    assert "[written in cupy, not the requested triton]" in hist and hist.count("[written in") == 1


# --- the flag on the commands ---------------------------------------------------------

@pytest.fixture
def fake_gpu(monkeypatch, tmp_path):
    """optimize / bench with the tag-keyed fake evaluator instead of a GPU, in tmp_path."""
    import kernelsmith.evaluate.evaluator as evaluator_mod
    import kernelsmith.evaluate.executors.local as pool_mod
    from tests.resilience.cli_child import FakeGPUEvaluator

    real_pool = pool_mod.EvaluatorPool
    monkeypatch.setattr(evaluator_mod, "Evaluator", FakeGPUEvaluator)
    monkeypatch.setattr(pool_mod, "EvaluatorPool", lambda *a, **k: real_pool(evaluators=[FakeGPUEvaluator()]))
    monkeypatch.chdir(tmp_path)
    task = tmp_path / "relu.py"
    task.write_text(TASK_SRC)
    return task


def invoke(*args):
    return CliRunner().invoke(app, list(args), env={"KERNELSMITH_API_KEY": "sk-test", "KERNELSMITH_SANDBOX": "process",
                                                    "KERNELSMITH_DB": "", "COLUMNS": "200"})


def test_optimize_language_triton_prompts_and_records(fake_gpu, tmp_path):
    db = tmp_path / "runs.db"
    with FakeOpenAIServer(default=Reply(texts=triton_reply("fast11"))) as srv:
        srv.push(*[Reply(texts=r) for r in (triton_reply("fast15"), kernel_reply("fast12"), triton_reply("fast18"))])
        r = invoke("optimize", str(fake_gpu), "--model", "fake-model", "--base-url", srv.base_url, "--language",
                   "triton", "-o", "chains=1", "--budget", "3", "--db", str(db), "--no-sanitize", "--no-confirm",
                   "--out", str(tmp_path / "best.py"))
        bodies = [q.body["messages"] for q in srv.chat_requests]
    assert r.exit_code == 0, r.output
    assert len(bodies) == 3
    for msgs in bodies:
        assert msgs[0]["content"] == system_prompt("triton")
        assert "@triton.jit" in msgs[0]["content"] and "load_inline" not in msgs[0]["content"]
        assert "the @triton.jit kernels and `class ModelNew`" in msgs[-1]["content"]
    # round 3 shows the CuPy attempt of round 2, which did worse, with a note on its language
    assert "Language: this kernel is written in CuPy" not in bodies[1][-1]["content"]
    assert ("Language: this kernel is written in CuPy (NVRTC), but this search asks for Triton"
            in bodies[2][-1]["content"])
    store = RunStore(db)
    [info] = store.list_runs()
    assert info.config["language"] == "triton"
    cands = store.candidates(info.id)
    assert [c.strategy_info["language"] for c in cands] == ["triton", "cupy", "triton"]
    assert "language: triton" in (tmp_path / "best.md").read_text()
    # resuming keeps the language; asking for another one is an error
    r = invoke("optimize", "--resume", info.id, "--language", "numba", "--db", str(db))
    assert r.exit_code == 2 and "keeps its language" in r.output and "Traceback" not in r.output


def test_optimize_default_language_is_cuda(fake_gpu, tmp_path):
    db = tmp_path / "runs.db"
    with FakeOpenAIServer(default=Reply(texts=kernel_reply("fast11"))) as srv:
        r = invoke("optimize", str(fake_gpu), "--model", "fake-model", "--base-url", srv.base_url, "-o", "chains=1",
                   "--budget", "1", "--db", str(db), "--no-sanitize", "--no-confirm", "--out", str(tmp_path / "b.py"))
        [msgs] = [q.body["messages"] for q in srv.chat_requests]
    assert r.exit_code == 0, r.output
    assert msgs[0]["content"] == SYSTEM_PROMPT
    [info] = RunStore(db).list_runs()
    assert info.config["language"] == "cuda"


def test_bogus_language_is_a_clear_error_and_writes_nothing(fake_gpu, tmp_path):
    for cmd in (["optimize", str(fake_gpu), "--model", "scripted:x.json"],
                ["bench", "--suite", str(tmp_path), "--model", "scripted:x.json"],
                ["optimize", "--resume", "r-1"]):
        r = invoke(*cmd, "--language", "bogus")
        assert r.exit_code == 2, r.output
        assert "--language is one of cuda, cupy, triton, numba, pycuda, any, not 'bogus'" in r.output
        assert "Traceback" not in r.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["relu.py"]  # no runs.db, no kernel, no report
    r = invoke("bench", "--generations", str(fake_gpu), "--suite", str(tmp_path), "--language", "triton")
    assert r.exit_code == 2 and "ready-made kernels" in r.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["relu.py"]


def test_bench_language(fake_gpu, tmp_path):
    suite = tmp_path / "tasks" / "level1"
    suite.mkdir(parents=True)
    (suite / "001_relu.py").write_text(TASK_SRC)
    replies = tmp_path / "replies.json"
    replies.write_text(json.dumps([triton_reply("fast13")]))
    db = tmp_path / "runs.db"
    r = invoke("bench", "--suite", str(tmp_path / "tasks"), "--model", f"scripted:{replies}", "--language", "numba",
               "--budget", "2", "--strategy", "best-of-n", "--db", str(db), "--no-sanitize", "--no-confirm")
    assert r.exit_code == 0, r.output
    store = RunStore(db)
    [info] = store.list_runs()
    assert info.kind == "bench" and info.config["language"] == "numba"
    cands = store.candidates(info.id)
    assert cands and all(c.prompt[0]["content"] == system_prompt("numba") for c in cands)
    assert all(c.strategy_info["language"] == "triton" for c in cands)
