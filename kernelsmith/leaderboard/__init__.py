"""The leaderboard: runs compared from runs.db alone.

    from kernelsmith.leaderboard import build, render, write_pngs, write_bundle
    lb = build("runs.db", run_ids=None, kind=None)     # or a RunStore
    text = render(lb, "md")                            # md | csv | json | html
    write_pngs(lb, "out/board")                        # out/board_fastp.png, out/board_speedups.png
    write_bundle(lb, store_or_url, "bundle/")          # kernels, samples, systems, references + manifest.json

Definitions (each run, over the tasks it attempted = its run_tasks plus any task it proposed a
candidate for; a task is identified by its hash, the hash of the exact reference source):

* winning kernel of a task: among the run's candidates for the task, by each candidate's
  latest evaluation, the correct one with the highest speedup over eager (first on ties).
* fast_0 (correct rate): fraction of tasks with at least one correct candidate.
* fast_p (p = 1, 1.5, 2; KernelBench): fraction of ALL attempted tasks whose winning kernel
  is correct AND more than p times faster than eager PyTorch (strictly greater).
* geomean over eager / over torch.compile, "correct": geometric mean of the winning kernel's
  speedup over the tasks with a correct timed kernel only (flatters runs that solve few tasks).
* geomean ..., "all (fail=1x)": over ALL attempted tasks, a task without a correct kernel
  counting as 1.0x (the user keeps the baseline). The compile speedup is the winning kernel's
  (chosen by speedup over eager).
* per level: the same metrics over the run's tasks of each level (tasks.level; "none" if unset).
* tokens, cost, GPU seconds per task: the run's totals (prompt + completion tokens and
  cost_usd of all its LLM calls, including replayed ones at their recorded cost; gpu_seconds
  of all its evaluations: the seconds they held a GPU, not their CPU compile; cached ones
  count 0) divided by the tasks attempted.
* speedup per dollar = wins per USD: the number of tasks whose winning kernel is correct and
  faster than eager (speedup > 1, the fast_1 numerator) divided by the run's LLM cost in USD;
  n/a when the run cost nothing. Chosen over "(geomean - 1) per USD" because it never goes
  negative, is additive over tasks and does not depend on the speedups' spread.
* replay: the run re-used recorded model outputs (any replayed LLM call, or model "replay:...").
* language x task (lang_table): per run, kernel language (kernelsmith.languages.detect on the
  candidate's code) and task, over the evaluated candidates in proposal order: pass@k and
  fast_1@k (unbiased estimators) and the proficiency over the first 10 (metrics.proficiency).

Reference sets (task versions drift): runs are ranked together ONLY when their sets of task
hashes are identical. Runs over different hash sets (another version of a task, or a
different subset) go into separate groups, "reference set A", "B", ..., each listing its
tasks; ranks, plots and comparisons never cross groups. Within a group runs are ranked by
fast_1, then geomean over eager (all, fail=1x), then fast_0, then age. Each row shows the
run's model, strategy and GPU (the entry) with its label and replay flag.
"""

from __future__ import annotations

DEFINITIONS = {
    "tasks": "tasks attempted by the run (its run_tasks plus tasks it proposed candidates for), by task hash",
    "winning_kernel": "per task, the correct candidate (latest evaluation) with the highest speedup over eager",
    "fast_0": "fraction of attempted tasks with at least one correct candidate (correct rate)",
    "fast_p": "fraction of ALL attempted tasks whose winning kernel is correct and speedup over eager > p",
    "geomean_eager_correct": "geometric mean speedup over eager, over tasks with a correct timed kernel only",
    "geomean_eager_all": "geometric mean speedup over eager over ALL attempted tasks, failures counted as 1.0x",
    "geomean_compile_correct": "geometric mean speedup over torch.compile (of the winning kernel), correct tasks only",
    "geomean_compile_all": "geometric mean speedup over torch.compile over ALL tasks, failures counted as 1.0x",
    "tokens_per_task": "(prompt + completion tokens of all the run's LLM calls) / tasks",
    "cost_per_task_usd": "(cost_usd of all the run's LLM calls, replayed ones at recorded cost) / tasks",
    "gpu_seconds_per_task": "(gpu_seconds of all the run's evaluations; cached = 0) / tasks",
    "wins_per_usd": "speedup per dollar: tasks with a correct kernel faster than eager (speedup > 1) per USD of "
                    "LLM cost; null when the run cost nothing",
    "replayed": "the run re-used recorded model outputs",
    "reference_set": "runs are ranked together only when their sets of task hashes are identical",
    "rank": "within a reference set: fast_1, then geomean_eager_all, then fast_0 (descending), then age",
    "languages": "per run, kernel language (by the candidate's imports) and task: n evaluated candidates, c correct",
    "pass@k": "unbiased estimator 1 - C(n-c,k)/C(n,k) (Chen et al. 2021); null when n < k",
    "fast_p@k": "pass@k's estimator over the candidates that are correct and faster than p x eager (p = 1 shown)",
    "proficiency": "Godoy et al. 2023 over the first 10 candidates in proposal order: 0 none correct, 0.25 one, "
                   "0.5 several mixed with incorrect ones, 0.75 several all ahead of the incorrect, 1 all correct",
}

from kernelsmith.leaderboard.build import Group, Leaderboard, RunEntry, build  # noqa: E402
from kernelsmith.leaderboard.bundle import write_bundle  # noqa: E402
from kernelsmith.leaderboard.export import FORMATS, render, write  # noqa: E402
from kernelsmith.leaderboard.plots import write_pngs  # noqa: E402

__all__ = ["DEFINITIONS", "Leaderboard", "Group", "RunEntry", "build", "render", "write", "write_pngs",
           "write_bundle", "FORMATS"]
