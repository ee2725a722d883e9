"""Runs one optimize in a child process (for the kill-and-resume test).

argv: DB_URL BASE_URL TASK_PATH RUN_ID|new EVAL_DELAY
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from kernelsmith.agent import OptimizeRequest, optimize  # noqa: E402
from kernelsmith.llm.client import OpenAIModel  # noqa: E402
from kernelsmith.search.base import Budget  # noqa: E402
from kernelsmith.store.runs import RunStore  # noqa: E402
from tests.agent.common import evaluator_for  # noqa: E402


def main() -> None:
    db, base_url, task_path, run_id, delay = sys.argv[1:6]
    store = RunStore(db)
    llm = OpenAIModel("fake-model", base_url=base_url, api_key="sk-test", backoff_s=0.01)
    req = OptimizeRequest(task_path, "fake-model", "best-of-n", Budget(max_candidates=40),
                          strategy_options={"n": 40}, llm_concurrency=1)
    rid, out = optimize(req, llm, evaluator_for(float(delay)), store, {}, run_id=None if run_id == "new" else run_id)
    print(f"RUN {rid} {len(out.candidates)} {out.stop_reason}", flush=True)


if __name__ == "__main__":
    main()
