"""`kernelsmith serve`: an HTTP reward server for RL trainers (TRL, verl, OpenRLHF).

- service.ScoreService: tasks, result cache with in-flight de-duplication, a queue and a worker
  (with its own evaluator) per GPU, async jobs. No HTTP.
- server.RewardServer: the stdlib HTTP server over it (routes and auth in its docstring).
- adapters: thin HTTP clients shaped as each trainer's reward function.
- store.ResultStore: the optional persistent result cache (--db).
"""

from kernelsmith.serve.service import RequestError, ScoreService, TaskIndex

__all__ = ["RequestError", "ScoreService", "TaskIndex"]
