"""Whole-model mode: profile, extract, optimize each hot group, install the winners, verify
the whole model end to end. `kernelsmith model FILE` is this over a model file; the steps:

1. capture (kernelsmith.model.capture) the model's graph on its example inputs;
2. find the groups (fused chains, GEMMs/convolutions, other ops) and time every node on the
   example inputs (kernelsmith.model.groups); the hottest `top` groups are extracted;
3. each becomes a task file with its real shapes, dtypes and weights (taskgen), searched
   with the normal pipeline (search.Searcher: `kernelsmith optimize`'s loop and checks);
4. a group whose best candidate is verified correct and faster than eager (over
   `min_speedup`) is a winner; winners are registered as torch.library custom ops and the
   graph is rewritten to call them (install);
5. the rewritten model is checked against the original on fresh inputs; if the
   combination fails, winners are added one at a time, each kept only while the whole
   model still passes; then both are timed, paired, with the harness's discipline (verify).
"""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import torch

from kernelsmith.model.capture import Captured, capture
from kernelsmith.model.errors import ModelError
from kernelsmith.model.groups import find_groups, node_times, rank
from kernelsmith.model.install import Winner, namespace, optimized_module
from kernelsmith.model.search import Searcher, TaskResult
from kernelsmith.model.taskgen import write_task
from kernelsmith.model.verify import check_outputs, fresh_like, time_pair


@dataclass
class GroupReport:
    key: str
    kind: str
    ops: list
    description: str
    ms: float
    share: float  # of the model's measured node time
    task: str = ""
    result: dict | None = None  # TaskResult.to_dict()
    installed: bool = False
    note: str = ""


@dataclass
class ModelReport:
    name: str
    origin: str
    device: str
    total_ms: float
    groups: list[GroupReport] = field(default_factory=list)
    namespace: str = ""
    e2e: dict | None = None
    note: str = ""
    profile: list = field(default_factory=list)  # torch.profiler's top entries (kernelsmith.model.profile)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def markdown(self) -> str:
        lines = [f"# kernelsmith model {self.name}", "", f"- from {self.origin}, on {self.device}",
                 f"- measured node time per forward: {self.total_ms:.3f} ms", ""]
        lines += ["| group | ops | share | task speedup | installed | note |", "|---|---|---|---|---|---|"]
        for g in self.groups:
            sp = (g.result or {}).get("speedup")
            lines.append(f"| `{g.key}` | {' -> '.join(g.ops)} | {g.share:.1%} | {f'{sp:.3f}x' if sp else '-'} | "
                         f"{'yes' if g.installed else 'no'} | {g.note} |")
        if self.profile:
            what = "operators" if self.device == "cpu" else "GPU kernels"
            lines += ["", f"torch.profiler: the original model's most expensive {what} (self time per forward):", "",
                      "| name | ms | calls |", "|---|---|---|"]
            lines += [f"| `{r['name'][:80]}` | {r['ms_per_forward']:.4f} | {r['calls_per_forward']:g} |" for r in self.profile]
        e = self.e2e or {}
        lines += [""]
        if e.get("speedup"):
            ci = e.get("speedup_ci")
            lines.append(f"End to end: **{e['speedup']:.3f}x** over eager"
                         + (f" (95% CI {ci[0]:.3f}-{ci[1]:.3f})" if ci else "")
                         + f"; {e['eager_ms']:.4f} ms -> {e['optimized_ms']:.4f} ms (medians of {e['samples']} "
                           f"paired samples); outputs within tolerance on {e['trials']} fresh input sets "
                           f"(max abs error {e['max_abs_error']:.2e}).")
        if self.note:
            lines.append(self.note)
        return "\n".join(lines) + "\n"


def load_model_file(path: str | Path, device: str | None = "cuda"):
    """(module in eval mode on `device`, example inputs, name) of a KernelBench-layout model
    file (class Model, get_inputs(), get_init_inputs()), built under torch.manual_seed(0)."""
    from kernelsmith.task import TaskError, validate_source

    p = Path(path)
    if not p.is_file():
        raise ModelError(f"model file not found: {p}")
    try:
        validate_source(p.read_text(), str(p))
    except TaskError as exc:
        raise ModelError(str(exc).replace("KernelBench-format task", "model file (KernelBench layout)")) from None
    spec = importlib.util.spec_from_file_location(f"ks_model_{p.stem}", p)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod
    try:
        spec.loader.exec_module(mod)
        torch.manual_seed(0)
        module = mod.Model(*mod.get_init_inputs()).eval()
        inputs = list(mod.get_inputs())
    except Exception as exc:  # noqa: BLE001 - the user's file
        raise ModelError(f"{p}: building the model or its inputs failed: {type(exc).__name__}: {exc}") from None
    if device:
        module = module.to(device)
        inputs = [x.to(device) if isinstance(x, torch.Tensor) else x for x in inputs]
    return module, inputs, p.stem


def plan(cap: Captured, top: int, only: list[str] | None = None, kinds: set | None = None):
    """(all groups ranked by time, the ones to extract, total ms)."""
    groups = find_groups(cap.graph)
    times = node_times(cap.gm, cap.inputs)
    ranked = rank(groups, times)
    total = sum(times.values()) or 1.0
    if only:
        by_key = {g.key: g for g in ranked}
        missing = [k for k in only if k not in by_key]
        if missing:
            raise ModelError(f"no group {', '.join(map(repr, missing))} in the model; its groups are: "
                             + ", ".join(g.key for g in ranked))
        chosen = [by_key[k] for k in only]
    else:
        chosen = [g for g in ranked if not g.why_not and (kinds is None or g.kind in kinds)][:top]
    return ranked, chosen, total


def optimize_model(module, inputs, name: str, searcher: Searcher, out_dir: Path, *, top: int = 4,
                   only: list[str] | None = None, kinds: set | None = None,
                   replies_for: Callable[[str], list[str] | None] | None = None, replies_name: str = "",
                   min_speedup: float = 1.0, atol: float | None = None, rtol: float | None = None,
                   trials: int = 5, timing_cfg=None, origin: str = "", dry_run: bool = False,
                   extract_only: bool = False, note: Callable[[str], None] = lambda m: None,
                   timer: Callable = time_pair, on_progress: Callable[[ModelReport], None] | None = None):
    """Steps 1-5 of the module docstring; returns (report, optimized module or None, winners)."""
    out_dir = Path(out_dir)
    cap = capture(module, inputs, need_cuda=not (dry_run or extract_only))
    ranked, chosen, total = plan(cap, top, only, kinds)
    dev = str(inputs[0].device) if inputs else "?"
    if dev.startswith("cuda"):
        dev = torch.cuda.get_device_name(inputs[0].device)
    report = ModelReport(name, origin or name, dev, total)
    if not extract_only:
        from kernelsmith.model.profile import profiler_table

        report.profile = profiler_table(module, inputs)
    by_group: dict[int, GroupReport] = {}
    for g in ranked:
        gr = GroupReport(g.key, g.kind, g.ops, g.describe(), g.ms, g.ms / total, note=g.why_not)
        report.groups.append(gr)
        by_group[id(g)] = gr
    winners: list[Winner] = []
    task_dirs = [] if extract_only else searcher.task_dirs
    for i, g in enumerate(chosen, 1):
        gr = by_group[id(g)]
        task_path = out_dir / "tasks" / f"{name}__{g.slug}.py"
        tf = write_task(cap.gm, g, task_path, f"{g.key} of {name}", origin or name, also=task_dirs)
        gr.task = str(tf.path)
        if extract_only:
            gr.note = f"task {tf.path}"
            continue
        llm, cap_n = None, None
        if replies_for is not None:
            replies = replies_for(g.key)
            if not replies:
                gr.note = "skipped: no generation for this group"
                note(f"[{i}/{len(chosen)}] {g.key}: skipped (no generation in {replies_name})")
                continue
            from kernelsmith.llm.scripted import ScriptedModel

            llm = ScriptedModel(replies, name=f"generations:{replies_name}#{g.key}", cycle=False)
            cap_n = len(replies)
        note(f"[{i}/{len(chosen)}] {g.key} ({g.describe()}, {gr.share:.1%} of the model): searching")
        res: TaskResult = searcher.run(tf.path, out_dir / "kernels" / f"{name}__{g.slug}_kernelsmith.py",
                                       llm=llm, max_candidates=cap_n)
        gr.result = res.to_dict()
        if on_progress is not None:  # the report so far survives a run cut short
            on_progress(report)
        sp = f"{res.speedup:.3f}x" if res.speedup else "none verified"
        note(f"[{i}/{len(chosen)}] {g.key}: {res.stop_reason}; best {sp}")
        if dry_run:
            from kernelsmith.cli.dryrun import verdict_label

            gr.note = "dry run: " + ", ".join(f"{verdict_label(v)} {n}" for v, n in sorted(res.verdicts.items()))
        elif res.kernel_path is not None and res.speedup and res.speedup > min_speedup:
            winners.append(Winner(g, tf.path, res.kernel_path, res.speedup, res.run_id))
        elif res.kernel_path is not None:
            gr.note = f"not installed: {res.speedup:.3f}x is not over {min_speedup:g}x"
        else:
            gr.note = "not installed: no candidate verified correct"
    if extract_only or dry_run:
        report.note = "dry run: tasks extracted and candidates screened and compiled; nothing installed" \
            if dry_run else "tasks extracted; nothing searched"
        return report, None, []
    if not winners:
        report.note = "No group had a verified kernel faster than eager: the model is unchanged."
        return report, None, []
    ns = namespace(name, winners)
    make = fresh_like(cap.inputs)
    opt = optimized_module(cap, winners, module, ns)
    e2e = check_outputs(module, opt, make, trials, atol, rtol)
    kept = list(winners)
    if not e2e.correct:  # one at a time, fastest first, each kept only while the model passes
        note(f"end to end with all {len(winners)} kernels: {e2e.detail}; adding them one at a time")
        kept = []
        for w in sorted(winners, key=lambda w: -w.speedup):
            trial = optimized_module(cap, kept + [w], module, ns)
            r = check_outputs(module, trial, make, trials, atol, rtol)
            if r.correct:
                kept.append(w)
            else:
                by_group[id(w.group)].note = f"not installed: the whole model then fails ({r.detail})"
        if not kept:
            report.note = "No kernel kept the whole model within tolerance: the model is unchanged."
            return report, None, []
        opt = optimized_module(cap, kept, module, ns)
        e2e = check_outputs(module, opt, make, trials, atol, rtol)
    if timing_cfg is None:  # the harness's timing settings (KERNELSMITH_MAX_TIMING_SECONDS ... included)
        from kernelsmith.config import EvalConfig
        from kernelsmith.harness.timing import TimingConfig

        timing_cfg = TimingConfig(**EvalConfig.from_env().timing)
    e2e = timer(module, opt, make, e2e, timing_cfg, atol, rtol)
    if not e2e.correct:
        report.note = f"The optimized model failed while timed ({e2e.detail}): the model is unchanged."
        report.e2e = e2e.to_dict()
        return report, None, []
    for w in kept:
        by_group[id(w.group)].installed = True
        by_group[id(w.group)].note = f"op torch.ops.{ns}.{w.op_name}"
    report.namespace = ns
    report.e2e = e2e.to_dict()
    return report, opt, kept


def write_report(report: ModelReport, out_dir: Path) -> tuple[Path, Path]:
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    md, js = out_dir / "report.md", out_dir / "report.json"
    md.write_text(report.markdown())
    js.write_text(json.dumps(report.to_dict(), indent=2, default=str) + "\n")
    return md, js


def read_generations(path: str | Path) -> Callable[[str], list[str] | None]:
    """A generations file for whole-model mode: JSONL rows {"key": GROUP_KEY, "code": CANDIDATE}
    (or "reply": a model answer); a key may have several rows, tried in order."""
    p = Path(path)
    rows: dict[str, list[str]] = {}
    try:
        lines = p.read_text().splitlines()
    except OSError as exc:
        raise ModelError(f"cannot read the generations file {p}: {exc}") from None
    for i, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            key = row["key"]
            text = row["reply"] if "reply" in row else f"```python\n{row['code']}\n```\n"
        except (ValueError, KeyError, TypeError) as exc:
            raise ModelError(f"{p}:{i}: expected a JSON object with \"key\" and \"code\" (or \"reply\"): {exc}") from None
        rows.setdefault(key, []).append(text)
    return rows.get
