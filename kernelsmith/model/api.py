"""`kernelsmith.optimize(module, example_inputs, ...)`: the whole module as one task.

The module is captured (torch.fx, on the example inputs), written as a KernelBench task
whose reference replays the captured graph and whose init inputs are the module's own
weights (taskgen), and searched with the normal pipeline (the strategies, budgets, checks,
runs.db and report of `kernelsmith optimize`). The module returned is a drop-in
replacement: for inputs of the verified shapes and dtypes on the GPU it runs the best
verified kernel (with the module's live parameters), for anything else the original
module; when no candidate was verified faster than eager it is the original module
itself. Its `kernelsmith` attribute holds the report (run id, speedups, paths).
"""

from __future__ import annotations

import re
import warnings
from pathlib import Path

import torch

from kernelsmith.model.capture import capture, check_inputs, check_module
from kernelsmith.model.errors import ModelError
from kernelsmith.model.groups import whole_graph
from kernelsmith.model.install import param_sig
from kernelsmith.model.runtime import Guarded, Kernel
from kernelsmith.model.search import SearchSettings, Searcher
from kernelsmith.model.taskgen import write_task
from kernelsmith.model.verify import check_outputs, fresh_like, time_pair


def _attr(module, target: str):
    obj = module
    for part in target.split("."):
        obj = getattr(obj, part)
    return obj


def optimize(module: torch.nn.Module, example_inputs, *, model: str = "", strategy: str = "refine",
             budget: int = 16, max_tokens: int | None = None, max_cost: float | None = None,
             max_minutes: float | None = None, patience: int | None = None, options: dict | None = None,
             language: str | None = None, db: str | None = None, out_dir: str | Path | None = None,
             name: str | None = None, base_url: str | None = None, sanitize: bool = True, confirm: bool = True,
             profile: bool = False, seed: int = 0, gpu: int | None = None, sandbox: str = "auto",
             record: str | None = None, dry_run: bool = False, min_speedup: float = 1.0,
             atol: float | None = None, rtol: float | None = None, dynamic_shapes=None,
             verbose: bool = True, evaluator=None, llm=None, store=None) -> torch.nn.Module:
    """Search for a faster verified kernel for `module` on `example_inputs` (CUDA tensors);
    returns a drop-in module (see the module docstring). The keyword arguments are those of
    `kernelsmith optimize` (model spec, strategy, budgets, --option pairs, language, runs.db,
    checks of a new best, GPU, sandbox); `dry_run` screens and compiles without a GPU and
    returns the original module. `evaluator`, `llm` and `store` replace the defaults."""
    from kernelsmith.cli.common import budget as make_budget  # the CLI's one definition of a budget
    from kernelsmith.languages import DEFAULT, check

    check_module(module)
    if dynamic_shapes is not None:
        raise ModelError("dynamic shapes are not supported: a kernel is verified at the shapes of the example inputs; "
                         "call optimize once per shape you need (other shapes run the original module)")
    xs = check_inputs(example_inputs, need_cuda=not dry_run)
    if not dry_run:
        devs = {p.device for p in list(module.parameters()) + list(module.buffers())}
        if any(d != xs[0].device for d in devs):
            raise ModelError(f"the module's parameters are on {', '.join(map(str, devs))}, the inputs on "
                             f"{xs[0].device}: move the module to the inputs' GPU (module.to(x.device))")
    try:
        lang = check(language) if language else DEFAULT
    except ValueError as exc:
        raise ModelError(str(exc)) from None
    name = name or re.sub(r"\W+", "_", type(module).__name__).lower()
    out = Path(out_dir or Path("kernelsmith_out") / name)
    settings = SearchSettings(model=model, base_url=base_url, strategy=strategy,
                              budget=make_budget(budget, max_tokens, max_cost, max_minutes, patience),
                              options=dict(options or {}), language=lang, seed=seed, sanitize=sanitize,
                              confirm=confirm, profile=profile, db=db, record=record)
    say = print if verbose else (lambda *a: None)
    cap = capture(module, xs, need_cuda=not dry_run)
    group = whole_graph(cap.graph)
    if gpu is None:  # evaluate on the GPU the module runs on
        gpu = xs[0].device.index or 0 if xs[0].is_cuda else 0
    elif xs[0].is_cuda and xs[0].device.index != gpu:
        raise ModelError(f"gpu={gpu} but the inputs are on {xs[0].device}: kernels are verified on the GPU they run on")
    with Searcher(settings, evaluator=evaluator, store=store, llm=llm, dry_run=dry_run,
                  gpu=gpu, sandbox=sandbox) as s:
        tf = write_task(cap.gm, group, out / f"{name}.py", f"{type(module).__name__} (whole module)",
                        f"kernelsmith.optimize({type(module).__name__})", also=s.task_dirs)
        say(f"kernelsmith: task {tf.path}; searching ({settings.strategy}, budget {budget})")
        res = s.run(tf.path, out / f"{name}_kernelsmith.py")
    report = {"task": str(tf.path), "run_id": res.run_id, "stop_reason": res.stop_reason,
              "task_speedup": res.speedup, "kernel": str(res.kernel_path) if res.kernel_path else None,
              "verdicts": res.verdicts, "installed": False}
    say(f"kernelsmith: run {res.run_id}: {res.stop_reason}; best "
        + (f"{res.speedup:.3f}x over eager" if res.speedup else "none verified"))
    if dry_run or res.kernel_path is None or not res.speedup or res.speedup <= min_speedup:
        from kernelsmith.cli.dryrun import verdict_label

        seen = ", ".join(f"{verdict_label(v)} {n}" for v, n in sorted(res.verdicts.items())) or "no candidate"
        report["note"] = (f"dry run ({seen}): nothing was run" if dry_run else
                          "no candidate was verified correct" if res.kernel_path is None else
                          f"the best verified kernel ({res.speedup:.3f}x) is not faster than {min_speedup:g}x")
        say(f"kernelsmith: returning the original module ({report['note']})")
        module.kernelsmith = report
        return module
    return _install(module, cap, group, tf, res, report, atol, rtol, say)


def _install(module, cap, group, tf, res, report, atol, rtol, say):
    targets = [str(p.target) for p in group.params]
    kernel = Kernel(Path(tf.path).stem, res.kernel_path, tf.path,
                    [(tuple(x.shape), str(x.dtype).replace("torch.", "")) for x in cap.inputs],
                    [param_sig(cap.gm, p) for p in group.params])

    def forward(*xs):
        return kernel(*xs, *[_attr(module, t) for t in targets])

    sig = [(tuple(x.shape), str(x.dtype).replace("torch.", "")) for x in cap.inputs]
    opt = Guarded(module, forward, sig, f"kernelsmith kernel {res.kernel_path.name} ({res.speedup:.3f}x on its task)")
    make = fresh_like(cap.inputs)
    e2e = check_outputs(module, opt, make, 5, atol, rtol)
    if e2e.correct:
        e2e = time_pair(module, opt, make, e2e, atol=atol, rtol=rtol)
    report["e2e"] = e2e.to_dict()
    if not e2e.correct:
        warnings.warn(f"kernelsmith: the verified kernel disagrees with the module in this process ({e2e.detail}); "
                      "returning the original module", stacklevel=3)
        report["note"] = f"end-to-end check failed: {e2e.detail}"
        module.kernelsmith = report
        return module
    report["installed"] = True
    opt.kernelsmith = report
    say(f"kernelsmith: installed {res.kernel_path}: {e2e.speedup:.3f}x end to end in this process")
    return opt


__all__ = ["optimize", "ModelError"]
