"""The whole optimize loop on a GPU, with no real LLM: a loopback OpenAI-compatible server
(tests/llm/fake_server.py) scripted to answer with real kernels, in this order:
a slow correct one (CuPy), a broken one (does not compile), a faster one (load_inline).

Shows the feedback of each evaluation reaching the next prompt, and the best verified
kernel coming out. Needs openai, sqlalchemy and alembic importable (carry wheels).
Usage: python dev/device/optimize.py [OUT_DIR]
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from kernelsmith.agent import OptimizeRequest, optimize, write_best  # noqa: E402
from kernelsmith.config import EvalConfig  # noqa: E402
from kernelsmith.evaluate.evaluator import Evaluator  # noqa: E402
from kernelsmith.llm.client import OpenAIModel  # noqa: E402
from kernelsmith.sandbox.local import LocalSandbox  # noqa: E402
from kernelsmith.search.base import Budget  # noqa: E402
from kernelsmith.store.runs import RunStore  # noqa: E402
from tests.llm.fake_server import FakeOpenAIServer, Reply  # noqa: E402

TASK = ROOT / "tasks" / "level1" / "001_leaky_relu_scale.py"
SOL = ROOT / "tests" / "fixtures" / "solutions" / "level1_001_leaky_relu_scale"


def fenced(code: str) -> str:
    return f"Here is my kernel.\n```python\n{code}\n```\n"


def main() -> None:
    out = Path(sys.argv[1] if len(sys.argv) > 1 else tempfile.mkdtemp())
    out.mkdir(parents=True, exist_ok=True)
    slow = (SOL / "correct_cupy.py").read_text()
    broken = slow.replace("__global__", "__global__ int broken = ;", 1)
    fast = (SOL / "correct_inline.py").read_text()
    # The default build cache (KERNELSMITH_HOME): builds from earlier steps are reused;
    # results are not (use_cache=False), so every candidate is really evaluated.
    cfg = EvalConfig.from_env(use_cache=False, timing={"max_seconds": 2.0})
    with FakeOpenAIServer() as srv, Evaluator(cfg, sandbox=LocalSandbox()) as ev:
        srv.push(Reply(texts=fenced(slow)), Reply(texts=fenced(broken)), Reply(texts=fenced(fast)))
        store = RunStore(f"sqlite:///{out / 'runs.db'}")
        llm = OpenAIModel("scripted-kernels", base_url=srv.base_url, api_key="none")
        req = OptimizeRequest(str(TASK), llm.name, "refine", Budget(max_candidates=3),
                              strategy_options={"chains": 1, "rounds": 3}, llm_concurrency=1)
        run_id, outcome = optimize(req, llm, ev, store, ev.probe())
        prompts = [r.body["messages"][-1]["content"] for r in srv.chat_requests]
    for i, c in enumerate(outcome.candidates):
        r = c.result
        print(f"candidate {i}: {r.verdict.value if r else c.format_error} "
              f"{f'{r.speedup:.3f}x' if r is not None and r.correct else ''} {r.message[:120] if r else ''}")
        if r is not None and (r.sanitizer or (r.timing and r.timing.other_session_speedup)):  # new bests only
            print(f"  checks of a new best: sanitizer {r.sanitizer or '-'}; second session "
                  f"{r.timing.other_session_speedup if r.timing else None}; warnings {r.warnings}")
    print("round-2 prompt carries round-1 speedup:", "speedup" in prompts[1].lower())
    print("round-3 prompt carries the compile error:", "error" in prompts[2] and "broken" in prompts[2])
    best = write_best(store, run_id, out / "best_kernel.py")
    print(f"run {run_id}: {outcome.stop_reason}; best {outcome.speedup}; wrote {best}")
    (out / "prompts.txt").write_text("\n\n=====\n\n".join(prompts))


if __name__ == "__main__":
    main()
