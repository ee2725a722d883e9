"""A runs.db with two runs: an optimize run made by the real loop (a loopback fake OpenAI
server and a recorded-results evaluator), and a hand-filled run with two tasks, an n=2
call, a format error, a code-only candidate and one never evaluated."""

from __future__ import annotations

import dataclasses

import pytest

from kernelsmith.agent import OptimizeRequest, optimize
from kernelsmith.llm.client import OpenAIModel
from kernelsmith.llm.types import Completion
from kernelsmith.results import SystemInfo
from kernelsmith.search.base import Budget
from kernelsmith.search.types import Candidate
from kernelsmith.store.runs import RunStore
from kernelsmith.task import Task
from tests.agent.common import TASK_SRC, evaluator_for, kernel_reply
from tests.llm.fake_server import FakeOpenAIServer, Reply
from tests.search.search_fakes import compile_error, correct, incorrect, kernel

SIGMOID_SRC = TASK_SRC.replace("torch.relu(x)", "torch.sigmoid(x)")
GPU = SystemInfo(gpu="NVIDIA H200", driver="580.1", torch="2.9.0", cuda="13.0")


@dataclasses.dataclass
class Data:
    url: str
    optimize_run: str
    manual_run: str
    n_optimize: int
    relu: Task
    sigmoid: Task


def _on(result, system=GPU):
    result.system = system
    return result


def _manual_run(store: RunStore, relu: Task, sigmoid: Task) -> str:
    run = store.create_run("optimize", "fake-model-2", "best-of-n", {}, {})
    store.upsert_task(relu, origin="tasks/relu.py")
    store.upsert_task(sigmoid, level=1, problem_id=21, origin="kernelbench:L1/P21")
    for t in (relu, sigmoid):
        store.set_run_task(run, t.hash, "running")
    msgs = [{"role": "system", "content": "You write CUDA."}, {"role": "user", "content": "Speed up relu."}]
    texts = ["```python\n" + kernel("m-fast30") + "```", "```python\n" + kernel("m-wrong") + "```"]
    comps = [Completion(text=t, model="fake-model-2", call_id="call-1", replayed=True) for t in texts]
    call = store.add_llm_call(run, "fake-model-2", msgs, comps, task_hash=relu.hash)
    a = Candidate(code=kernel("m-fast30"), completion=comps[0], strategy_info={"round": 1})
    b = Candidate(code=kernel("m-wrong"), completion=comps[1], strategy_info={"round": 1})
    store.add_evaluation(store.add_candidate(run, relu.hash, a, llm_call_id=call), _on(correct(3.0)))
    store.add_evaluation(store.add_candidate(run, relu.hash, b, llm_call_id=call), _on(incorrect()))
    # sigmoid: a format error, two correct ones (1.5x child of 1.2x), a compile error, a
    # code-only candidate (no completion) at 9x, and one never evaluated
    smsgs = [{"role": "user", "content": "Speed up sigmoid."}]
    ftext = "I cannot write this kernel."
    fcomp = Completion(text=ftext, model="fake-model-2", call_id="call-2")
    fcall = store.add_llm_call(run, "fake-model-2", smsgs, [fcomp], task_hash=sigmoid.hash)
    store.add_candidate(run, sigmoid.hash, Candidate(code="", completion=fcomp, format_error="no code block"),
                        llm_call_id=fcall)
    ids = {}
    for tag, result in (("s12", correct(1.2)), ("s15", correct(1.5)), ("sbroken", compile_error()), ("spend", None)):
        text = "```python\n" + kernel(tag) + "```"
        comp = Completion(text=text, model="fake-model-2", call_id=f"call-{tag}")
        cid_call = store.add_llm_call(run, "fake-model-2", smsgs, [comp], task_hash=sigmoid.hash)
        parents = [ids["s12"]] if tag == "s15" else []
        cid = store.add_candidate(run, sigmoid.hash, Candidate(code=kernel(tag), completion=comp, parents=parents),
                                  llm_call_id=cid_call)
        ids[tag] = cid
        if result is not None:
            store.add_evaluation(cid, _on(result))
    code_only = store.add_candidate(run, sigmoid.hash, Candidate(code=kernel("s90"), strategy_info={"row": "gen:1"}))
    store.add_evaluation(code_only, _on(correct(9.0)))
    store.set_run_status(run, "finished")
    return run


@pytest.fixture(scope="session")
def data(tmp_path_factory) -> Data:
    tmp = tmp_path_factory.mktemp("export")
    task_file = tmp / "relu.py"
    task_file.write_text(TASK_SRC)
    url = f"sqlite:///{tmp / 'runs.db'}"
    store = RunStore(url)
    replies = [kernel_reply(t) for t in ("broken1", "wrong1", "fast15", "fast23")]
    with FakeOpenAIServer(default=Reply(texts=kernel_reply("fast11"))) as srv:
        srv.push(*[Reply(texts=r) for r in replies])
        llm = OpenAIModel("fake-model", base_url=srv.base_url, api_key="sk-test", backoff_s=0.01)
        req = OptimizeRequest(str(task_file), "fake-model", "refine", Budget(max_candidates=6),
                              strategy_options={"chains": 1}, llm_concurrency=1)
        run1, out = optimize(req, llm, evaluator_for(), store, {"system": {"gpu": "NVIDIA H200"}})
    relu = Task.from_source(TASK_SRC, "relu.py")
    sigmoid = Task.from_source(SIGMOID_SRC, "sigmoid.py")
    run2 = _manual_run(store, relu, sigmoid)
    store.close()
    return Data(url=url, optimize_run=run1, manual_run=run2, n_optimize=len(out.candidates), relu=relu,
                sigmoid=sigmoid)
