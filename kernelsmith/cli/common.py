"""Helpers shared by the CLI's commands: the run database, strategy options, GPU indices,
and the option definitions every search command uses (one name per concept)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from kernelsmith.cli.errors import fail, mask_secrets

CONTEXT = {"help_option_names": ["-h", "--help"]}
SANDBOX_HELP = "where candidate jobs run: auto | process | docker"
DB_HELP = "SQLAlchemy URL or SQLite path of the run database [default: KERNELSMITH_DB, else ./runs.db]"
GPUS_HELP = "GPU indices to use, e.g. 0,1 (counted within CUDA_VISIBLE_DEVICES) [default: all visible]"
STRATEGY_HELP = "refine | contrastive | evolve | best-of-n"


def db_label(db: str | None) -> str:
    return mask_secrets(db) if db else "(default runs.db)"


def open_store(db: str | None):
    """The run database; exits 2 with a one-line (masked) reason when it cannot be opened."""
    from sqlalchemy.exc import SQLAlchemyError

    from kernelsmith.store.runs import RunStore

    try:
        return RunStore(db)
    except (SQLAlchemyError, OSError, ValueError, RuntimeError) as exc:
        fail(f"cannot open the run database {db_label(db)}: {str(exc).splitlines()[0] if str(exc) else exc!r}")


def existing_store(db: str | None):
    """The run database of a command that only reads it (or resumes): never creates one."""
    from kernelsmith.store.db import resolve_url

    try:
        url = resolve_url(db)
    except Exception as exc:  # noqa: BLE001 - a malformed URL
        fail(f"not a database URL or path: {db_label(db)} ({str(exc).splitlines()[0]})")
    if url.startswith("sqlite:///") and not url.startswith("sqlite:///:memory:") \
            and not Path(url[len("sqlite:///"):].split("?")[0]).is_file():
        fail(f"no run database at {url[len('sqlite:///'):]} (pass --db, or run where runs.db is)")
    return open_store(db)


def memory_store():
    """A throwaway in-memory run database (--dry-run writes nothing to disk)."""
    from kernelsmith.store.runs import RunStore

    return RunStore("sqlite://")


def parse_options(pairs: list[str]) -> dict:
    out = {}
    for p in pairs:
        if "=" not in p:
            fail(f"--option takes KEY=VALUE, got {p!r}")
        k, v = p.split("=", 1)
        out[k.strip()] = v.strip()
    return out


def one_gpu(gpus: Optional[str], old_gpu: Optional[int] = None) -> int:
    """The single GPU of eval / optimize, from --gpus (one index) or the old --gpu."""
    if old_gpu is not None:
        return old_gpu
    if gpus is None or not gpus.strip():
        return 0
    try:
        g = int(gpus.strip())
    except ValueError:
        fail(f"--gpus takes one GPU index here (e.g. --gpus 1); got {gpus!r}")
    if g < 0:
        fail(f"--gpus takes a non-negative GPU index; got {gpus!r}")
    return g


def check_executor(executor: str) -> None:
    if executor not in ("local", "ray"):
        fail(f"--executor is local or ray, not {executor!r}")


def check_sandbox(sandbox: str) -> None:
    if sandbox not in ("auto", "process", "docker"):
        fail(f"--sandbox is auto, process or docker, not {sandbox!r}")


def check_language(language: Optional[str]) -> Optional[str]:
    """--language as a kernelsmith.languages name or "any" (None stays None: not given)."""
    from kernelsmith.languages import check

    if language is None:
        return None
    try:
        return check(language)
    except ValueError:
        from kernelsmith.languages import choices

        fail(f"--language is one of {', '.join(choices())}, not {language!r}")


def resolve_language(given: Optional[str], stored: str, resuming: bool) -> str:
    """The language of a search: a resumed run keeps its own (a different --language is an
    error), a new one takes --language, else the default."""
    from kernelsmith.languages import DEFAULT

    lang = check_language(given)
    if resuming:
        if lang is not None and lang != stored:
            fail(f"the run was started with --language {stored}, and a resumed run keeps its language; "
                 f"start a new run for --language {lang}")
        return stored
    return lang or DEFAULT


def budget(candidates: int, max_tokens: Optional[int], max_cost: Optional[float], max_minutes: Optional[float],
           patience: Optional[int]):
    from kernelsmith.search.base import Budget

    return Budget(max_candidates=candidates, max_tokens=max_tokens, max_cost_usd=max_cost,
                  max_seconds=max_minutes * 60 if max_minutes else None, patience=patience)


# -- options shared by every command that runs a search (optimize, bench) --------------
BUDGET_HELP = "candidates per search (per task in bench)"
MAX_TOKENS = typer.Option(None, "--max-tokens", min=1, help="token budget of a search (prompt + completion)")
MAX_COST = typer.Option(None, "--max-cost", min=0.0, help="money budget of a search in USD")
MAX_MINUTES = typer.Option(None, "--max-minutes", min=0.0, help="wall-time budget of a search in minutes")
PATIENCE = typer.Option(None, "--patience", min=1, help="stop a search after N candidates without a >1% improvement")
LANGUAGE_HELP = ("kernel language the prompts ask for: cuda (CUDA C++ with load_inline or CuPy) | cupy | triton | "
                 "numba | pycuda | any (one search, the model picks per candidate) [default: cuda; a resumed run: "
                 "its own]")
LANGUAGE = typer.Option(None, "--language", metavar="LANG", help=LANGUAGE_HELP)
