"""Executors: what runs a batch of evaluations, over one Evaluator per GPU.

- `local`: `EvaluatorPool`, one `Evaluator` per GPU of this machine; batches are dealt
  across the GPUs and `map_tasks` leases one GPU per task.
- `ray`: `make_ray_pool`, the same `EvaluatorPool` filled with proxies of Ray GPU actors
  across a cluster: the driver side in `ray/__init__.py`, the GPU actor in `ray/actor.py`,
  remote compiles and shipped build directories in `ray/builds.py`, what both sides share
  in `ray/runtime.py`.

This package imports neither on its own: Ray stays optional.
"""
