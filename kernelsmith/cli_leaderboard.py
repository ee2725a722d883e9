"""CLI command ``kernelsmith leaderboard``: rank the runs recorded in runs.db (see
``kernelsmith.leaderboard`` for every metric's definition)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console

err = Console(stderr=True)

KINDS = ("bench", "generations", "optimize", "serve", "eval")


def register(app: typer.Typer) -> None:
    app.command("leaderboard")(leaderboard)


def _fail(message: str, code: int = 2) -> None:
    err.print(f"[bold red]error:[/] {message}")
    raise typer.Exit(code)


def leaderboard(
    db: Optional[str] = typer.Option(None, help="SQLAlchemy URL or SQLite path of the run database (default runs.db)"),
    fmt: str = typer.Option("md", "--format", help="md | csv | json | html"),
    out: Optional[Path] = typer.Option(None, help="write here (plus <out>_fastp.png and <out>_speedups.png); "
                                                  "default: print to stdout, no PNGs"),
    bundle: Optional[Path] = typer.Option(None, help="also write a reproducibility bundle into this directory"),
    runs: Optional[str] = typer.Option(None, help="only these runs: comma-separated ids or unique prefixes"),
    kind: Optional[str] = typer.Option(None, help="only runs of this kind: bench | generations | optimize"),
    no_png: bool = typer.Option(False, help="with --out: skip the PNG plots"),
) -> None:
    """Rank runs by model, strategy and GPU: fast_p, geomean speedups, cost; md/csv/json/html."""
    from sqlalchemy.exc import SQLAlchemyError

    from kernelsmith.leaderboard import FORMATS, build, render, write, write_bundle
    from kernelsmith.store.queries import NotFound

    if fmt not in FORMATS:
        _fail(f"unknown --format {fmt!r}: use one of {', '.join(FORMATS)}")
    if kind is not None and kind not in KINDS:
        _fail(f"unknown --kind {kind!r}: use one of {', '.join(KINDS)}")
    run_ids = [r.strip() for r in runs.split(",") if r.strip()] if runs else None
    if db is not None and "://" not in db and not Path(db).expanduser().is_file():
        _fail(f"no run database at {db}")
    try:
        lb = build(db, run_ids=run_ids, kind=kind)
    except NotFound as exc:
        _fail(str(exc))
    except (SQLAlchemyError, OSError, ValueError) as exc:
        _fail(f"cannot read the run database {db or '(default runs.db)'}: {str(exc).splitlines()[0]}")
    if not lb.groups:
        err.print("[yellow]no runs with tasks matched[/]")
    if out is None:
        sys.stdout.write(render(lb, fmt))
        sys.stdout.write("" if fmt == "csv" else "\n")
    else:
        try:
            paths = write(lb, fmt, out, pngs=not no_png)
        except ImportError as exc:
            _fail(f"the PNG plots need matplotlib ({exc}); install it or pass --no-png")
        for p in paths:
            err.print(f"wrote {p}")
    if bundle is not None:
        manifest = write_bundle(lb, db, bundle)
        err.print(f"wrote bundle {manifest}")
