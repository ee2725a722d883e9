"""`kernelsmith serve`: an HTTP reward server for RL trainers (TRL, verl, OpenRLHF).

- service.ScoreService: ties the parts together and keeps the async jobs (no HTTP):
  task_index (tasks by name or hash), request_items (parsing), result_cache (LRU and
  in-flight de-duplication), gpu_workers (a queue, thread and evaluator per GPU), jobs
  (rewards and response rows); errors holds RequestError (HTTP 400), below all of them.
- server.RewardServer: the stdlib HTTP server over it (routes and auth in its docstring).
- adapters: thin HTTP clients shaped as each trainer's reward function.
- store.ResultStore: the optional persistent result cache (--db).
"""

from kernelsmith.serve.service import RequestError, ScoreService, TaskIndex

__all__ = ["RequestError", "ScoreService", "TaskIndex"]
