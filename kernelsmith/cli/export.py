"""CLI command `export`: recorded runs as a training dataset (JSONL / Parquet)."""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer
from rich.console import Console

from kernelsmith.cli.common import DB_HELP, existing_store
from kernelsmith.cli.errors import fail


def register(app: typer.Typer) -> None:
    app.command("export")(export)


def export(
    run_ids: List[str] = typer.Argument(..., help="run ids (or unique prefixes) to export"),
    fmt: str = typer.Option("jsonl", "--format", help="jsonl | parquet"),
    out: Path = typer.Option(..., "--out", help="output file (its folders are created)"),
    db: Optional[str] = typer.Option(None, help=DB_HELP),
    correct_only: bool = typer.Option(False, "--correct-only", help="only candidates verified correct"),
    best_per_task: bool = typer.Option(False, "--best-per-task",
                                       help="only the fastest correct candidate of each (run, task)"),
    reward: List[str] = typer.Option([], "--reward",
                                     help="reward to compute into the `rewards` column (repeatable; "
                                          "default log_speedup and staged)"),
    include_code_only: bool = typer.Option(False, "--include-code-only",
                                           help="also candidates without a model completion (bench --generations): "
                                                "prompt/completion/messages are null"),
    with_results: bool = typer.Option(False, "--with-results", help="add the whole evaluation as JSON text"),
) -> None:
    """Export runs' candidates, one row each: prompt, completion, SFT `messages`, code, verdict, speedups,
    rewards. Loads with datasets.load_dataset("json"|"parquet", data_files=OUT)."""
    from kernelsmith.dataset import DEFAULT_REWARDS, ExportError, ExportOptions, export_runs
    store = existing_store(db)
    opts = ExportOptions(correct_only=correct_only, best_per_task=best_per_task,
                         rewards=tuple(reward) or DEFAULT_REWARDS, include_code_only=include_code_only,
                         with_results=with_results)
    try:
        summary = export_runs(store, run_ids, out, fmt=fmt.lower(), opts=opts)
    except ExportError as exc:
        fail(str(exc), exc.code)
    except OSError as exc:
        fail(f"cannot write {out}: {exc}")
    finally:
        store.close()
    note = f" ({summary.skipped_code_only} without a completion left out)" if summary.skipped_code_only else ""
    Console().print(f"wrote {summary.rows} rows from {len(summary.runs)} run(s) to {summary.path}{note}")
