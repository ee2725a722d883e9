"""CLI command `serve`: the HTTP reward server for RL trainers (see kernelsmith/serve)."""

from __future__ import annotations

import logging
import os
import signal
import threading
from pathlib import Path
from typing import List, Optional

import typer
from rich.console import Console

from kernelsmith.cli.common import DB_HELP, SANDBOX_HELP, check_sandbox
from kernelsmith.cli.errors import fail, install_log_masking

LOOPBACK = {"127.0.0.1", "localhost", "::1"}


def register(app: typer.Typer) -> None:
    app.command()(serve)


def parse_gpus(text: str) -> list[int]:
    try:
        gpus = [int(x) for x in text.replace(" ", "").split(",") if x != ""]
    except ValueError:
        raise ValueError(f"--gpus takes comma-separated GPU indices like 0,1; got {text!r}") from None
    if not gpus or any(g < 0 for g in gpus) or len(set(gpus)) != len(gpus):
        raise ValueError(f"--gpus takes distinct non-negative GPU indices like 0,1; got {text!r}")
    return gpus


def resolve_token(token_env: str, no_auth: bool, host: str) -> str | None:
    """The bearer token from the environment; raises ValueError saying what to do when unsafe."""
    if no_auth:
        if host not in LOOPBACK:
            raise ValueError(f"--no-auth is only allowed with --host 127.0.0.1 (got --host {host}): anyone who "
                             f"can reach the port could run code on your GPUs; set a token in ${token_env} instead")
        return None
    token = os.environ.get(token_env, "").strip()
    if not token:
        raise ValueError(f"no token: set ${token_env} (clients send `Authorization: Bearer $TOKEN`), e.g. "
                         f"`export {token_env}=$(python -c 'import secrets; print(secrets.token_urlsafe(32))')`; "
                         "or, on a single machine only, pass --no-auth with --host 127.0.0.1")
    if len(token) < 16:
        raise ValueError(f"the token in ${token_env} is {len(token)} characters; use at least 16")
    return token


def build_server(tasks: list[Path], host: str = "127.0.0.1", port: int = 8000, token: str | None = None,
                 gpus: list[int] | None = None, reward: str = "log_speedup", max_request_mb: float = 8.0,
                 max_items: int = 1024, db: str | None = None, evaluator_factory=None, batch_size: int = 16,
                 sandbox: str = "auto", executor: str = "local", address: str | None = None):
    """The running service and its (not yet serving) HTTP server. Raises ValueError/TaskError/OSError."""
    from kernelsmith.serve.server import RewardServer
    from kernelsmith.serve.service import ScoreService, TaskIndex

    index = TaskIndex.load(tasks)
    if not len(index):
        raise ValueError(f"no KernelBench-format task found in {', '.join(map(str, tasks))}")
    if evaluator_factory is None and executor == "ray":
        evaluator_factory, gpus = _ray_factory(sandbox, address)
    if evaluator_factory is None:
        def evaluator_factory(gpu: int):
            from kernelsmith.config import EvalConfig
            from kernelsmith.evaluate.evaluator import Evaluator

            return Evaluator(EvalConfig.from_env(gpu=gpu, sandbox=sandbox))
    store = None
    if db:
        from kernelsmith.serve.store import ResultStore

        store = ResultStore(db)
    service = ScoreService(index, evaluator_factory, gpus or [0], reward=reward, store=store,
                           batch_size=batch_size)
    server = RewardServer((host, port), service, token, max_request_bytes=int(max_request_mb * 2**20),
                          max_items=max_items)
    service.start()
    return service, server


def _ray_factory(sandbox: str, address: str | None):
    """One Ray actor per cluster GPU; queue i of the service is served by actor i."""
    from kernelsmith.config import EvalConfig
    from kernelsmith.evaluate.executors.ray import make_ray_pool, ray_available

    ok, why = ray_available()
    if not ok:
        raise ValueError(why)
    pool = make_ray_pool(EvalConfig.from_env(sandbox=sandbox), address=address)
    return (lambda i: pool.evaluators[i]), list(range(len(pool.evaluators)))


def probed_evaluators(gpus: list[int] | None, sandbox: str):
    """(gpus, factory): one evaluator per GPU, each of which has passed the GPU probe. The
    service is never started on a machine where every score would fail: no GPU visible, or
    one that the sandboxed probe cannot use, raises NoGPU / RuntimeError here."""
    from kernelsmith.config import EvalConfig
    from kernelsmith.evaluate.evaluator import Evaluator, NoGPU
    from kernelsmith.evaluate.executors.local import visible_gpus

    if gpus is None:
        gpus = visible_gpus()
        if not gpus:
            raise NoGPU("no CUDA GPU visible (nvidia-smi lists none, or CUDA_VISIBLE_DEVICES is empty)")
    ready: dict[int, Evaluator] = {}
    try:
        for g in gpus:
            ev = Evaluator(EvalConfig.from_env(gpu=g, sandbox=sandbox))
            ready[g] = ev
            ev.probe(ceilings=False)
    except BaseException:
        for ev in ready.values():
            ev.close()
        raise

    def factory(gpu: int):
        ev = ready.pop(gpu, None)
        return ev if ev is not None else Evaluator(EvalConfig.from_env(gpu=gpu, sandbox=sandbox))

    def close_unused() -> None:  # the server did not start: no fork server is left behind
        while ready:
            ready.popitem()[1].close()

    factory.close_unused = close_unused
    return gpus, factory


def serve(
    suite: List[Path] = typer.Option([], "--suite", metavar="PATH", help="task file or folder (searched for *.py); repeatable"),
    old_tasks: List[Path] = typer.Option([], "--tasks", hidden=True, help="old name of --suite"),
    host: str = typer.Option("127.0.0.1", help="address to listen on"),
    port: int = typer.Option(8000, min=0, max=65535, help="port to listen on (0: any free port)"),
    token_env: str = typer.Option("KERNELSMITH_SERVE_TOKEN", help="environment variable holding the bearer token"),
    no_auth: bool = typer.Option(False, "--no-auth", help="no token (only with --host 127.0.0.1)"),
    gpus: Optional[str] = typer.Option(None, help="GPU indices to evaluate on, e.g. 0,1: one queue and worker each "
                                                  "[default: all visible]"),
    reward: str = typer.Option("log_speedup", help="default reward (a request may name another)"),
    max_request_mb: float = typer.Option(8.0, min=0.001, help="largest request body accepted (413 beyond)"),
    max_items: int = typer.Option(1024, min=1, help="most items in one request (400 beyond)"),
    batch_size: int = typer.Option(16, min=1, help="candidates handed to one GPU's evaluator at once"),
    db: Optional[str] = typer.Option(None, help="persist results across restarts here: " + DB_HELP.split(" [")[0]),
    sandbox: str = typer.Option("auto", help=SANDBOX_HELP),
    executor: str = typer.Option("local", help="local | ray (one actor per GPU of a Ray cluster; --gpus is ignored)"),
    address: Optional[str] = typer.Option(None, help="Ray cluster address (with --executor ray)"),
) -> None:
    """Serve rewards over HTTP for RL trainers (TRL, verl, OpenRLHF): POST completions, get verified speedups.
    Refuses to start without a usable GPU (every score would fail)."""
    import rewards
    from kernelsmith.evaluate.evaluator import NoGPU
    from kernelsmith.serve.service import TaskIndex
    from kernelsmith.task import TaskError

    tasks = list(suite) + list(old_tasks)
    factory = None
    try:
        if not tasks:
            raise ValueError("give the tasks to serve: --suite tasks/ (a task file or folder; repeatable)")
        gpu_list = parse_gpus(gpus) if gpus is not None else None
        token = resolve_token(token_env, no_auth, host)
        if reward not in rewards.names():
            raise ValueError(f"unknown reward {reward!r}; known: {', '.join(rewards.names())}")
        if executor not in ("local", "ray"):
            raise ValueError(f"--executor is local or ray, not {executor!r}")
        check_sandbox(sandbox)
        if not len(TaskIndex.load(tasks)):
            raise ValueError(f"no KernelBench-format task found in {', '.join(map(str, tasks))}")
        if executor == "local":
            gpu_list, factory = probed_evaluators(gpu_list, sandbox)
        try:
            service, server = build_server(tasks, host, port, token, gpu_list, reward, max_request_mb, max_items,
                                           db, evaluator_factory=factory, batch_size=batch_size, sandbox=sandbox,
                                           executor=executor, address=address)
        except BaseException:
            if factory is not None:
                factory.close_unused()
            raise
    except NoGPU as exc:
        fail(f"{exc}; `kernelsmith serve` scores on CUDA GPUs, so it does not start without one")
    except (ValueError, TaskError) as exc:
        fail(str(exc))
    except OSError as exc:
        fail(f"cannot listen on {host}:{port}: {exc}")
    except RuntimeError as exc:
        fail(f"the GPU check failed, so the server does not start: {exc}")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    install_log_masking()
    con = Console()
    con.print(f"kernelsmith serve on [bold]{server.url}[/]: {len(service.tasks)} tasks, GPUs "
              f"{','.join(map(str, service.gpus))}{' (Ray actors)' if executor == 'ray' else ''}, reward {reward}, auth "
              f"{'OFF (loopback only)' if token is None else 'bearer token from $' + token_env}", soft_wrap=True)
    stop = threading.Event()

    def _stop(*_):
        stop.set()
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, _stop)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
        service.close()
        con.print("kernelsmith serve stopped")
