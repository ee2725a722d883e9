"""The reward server scoring a batch on a real GPU (issue 6).

Starts `kernelsmith serve` as its own process (token auth, port on loopback), then scores
one batch through the three client adapters: TRL's reward function, verl's compute_score
and OpenRLHF's /get_reward. The batch holds, for three tasks, a correct kernel, a wrong
one and a completion with no code, plus a duplicate (served from the code-hash cache).
Usage: python dev/device/serve.py [--gpus 0]
"""

from __future__ import annotations

import json
import os
import secrets
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from kernelsmith.serve import adapters  # noqa: E402

SOL = ROOT / "tests" / "fixtures" / "solutions"
TASKS = ["001_leaky_relu_scale", "002_row_softmax", "004_matmul"]


def fenced(code: str) -> str:
    return f"Here is the kernel.\n```python\n{code}\n```"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def get(url: str, token: str) -> dict:
    req = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"})
    with urllib.request.urlopen(req, timeout=10) as r:
        return json.loads(r.read())


def main() -> None:
    gpus = sys.argv[sys.argv.index("--gpus") + 1] if "--gpus" in sys.argv else "0"
    token, port = secrets.token_urlsafe(24), free_port()
    url = f"http://127.0.0.1:{port}"
    env = dict(os.environ, KERNELSMITH_SERVE_TOKEN=token, KERNELSMITH_COMPILE_BASELINE="0")
    proc = subprocess.Popen([sys.executable, "-m", "kernelsmith.cli", "serve", "--tasks", str(ROOT / "tasks" / "level1"),
                             "--port", str(port), "--gpus", gpus], env=env)
    try:
        for _ in range(120):
            try:
                health = json.loads(urllib.request.urlopen(f"{url}/healthz", timeout=2).read())
                break
            except OSError:
                if proc.poll() is not None:
                    sys.exit(f"serve exited with {proc.returncode}")
                time.sleep(0.5)
        else:
            sys.exit("serve did not answer /healthz within 60 s")
        print("healthz:", health, flush=True)
        names, completions = [], []
        for t in TASKS:
            for sol in ("correct_cupy.py", "wrong.py"):
                names.append(t)
                completions.append(fenced((SOL / f"level1_{t}" / sol).read_text()))
            names.append(t)
            completions.append("I could not write a kernel for this one.")
        names.append(TASKS[0])
        completions.append(completions[0])  # duplicate: scored once
        t0 = time.perf_counter()
        trl = adapters.make_trl_reward(url, token)
        rewards = trl(prompts=["p"] * len(names), completions=completions, task=names)
        t_trl = time.perf_counter() - t0
        items = [{"task": n, "completion": c} for n, c in zip(names, completions)]
        details = adapters.score(url, token, items)  # all cached now: the same code hashes
        for n, r, d in zip(names, rewards, details):
            print(f"{n:24s} reward {r!s:>22s} verdict {d.get('verdict')!s:14s} error {d.get('error_class')!s:16s} "
                  f"speedup {d.get('speedup')!s:>20s} cached {d.get('cached')}", flush=True)
        print(f"TRL batch of {len(names)} scored in {t_trl:.1f} s; re-scored (cache) in "
              f"{time.perf_counter() - t0 - t_trl:.2f} s", flush=True)
        os.environ.update(KERNELSMITH_SERVE_URL=url, KERNELSMITH_SERVE_TOKEN=token)
        v = adapters.compute_score("kernelsmith", completions[0], TASKS[0])
        prompt = f"Write a faster CUDA kernel for {TASKS[0]}.\n"  # OpenRLHF's query is prompt + response
        o = adapters.openrlhf_reward(url, queries=[prompt + c for c in completions[:2]], prompts=[prompt] * 2,
                                     labels=TASKS[:1] * 2, token=token)
        print(f"verl compute_score {v}; OpenRLHF rewards {o}", flush=True)
        print("queue:", get(f"{url}/v1/queue", token), flush=True)
    finally:
        proc.terminate()
        proc.wait(timeout=30)


if __name__ == "__main__":
    main()
