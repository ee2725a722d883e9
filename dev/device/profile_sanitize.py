"""Nsight Compute and compute-sanitizer through the evaluator on a GPU: a correct kernel
(profile expected; sanitizer clean) and two faulty ones (an out-of-bounds read, a race).
Usage: python dev/device/profile_sanitize.py [CANDIDATE_FILE_NAME ...]"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from kernelsmith.config import EvalConfig  # noqa: E402
from kernelsmith.evaluate.evaluator import Evaluator  # noqa: E402
from kernelsmith.sandbox.local import LocalSandbox  # noqa: E402
from kernelsmith.task import Task  # noqa: E402

HOS = ROOT / "tests" / "fixtures" / "hostile"
SOL = ROOT / "tests" / "fixtures" / "solutions"


def main() -> None:
    cache = Path(tempfile.mkdtemp(prefix="ks-tools-", dir="/tmp"))
    cache.chmod(0o755)
    cases = [(ROOT / "tasks/level1/004_matmul.py", SOL / "level1_004_matmul/correct_cupy.py"),
             (HOS / "task.py", HOS / "good_cupy.py"), (HOS / "task.py", HOS / "29_oob_read.py"),
             (HOS / "task.py", HOS / "28b_racy_intrawarp.py")]
    if len(sys.argv) > 1:  # file names to keep, e.g. 29_oob_read.py
        cases = [c for c in cases if c[1].name in sys.argv[1:]]
    with Evaluator(EvalConfig(cache_dir=cache), sandbox=LocalSandbox()) as ev:
        ev.probe(ceilings=False)
        for task_path, cand in cases:
            t, code = Task.load(task_path), cand.read_text()
            print(f"== {cand.name}\nprofile: {ev.profile(t, code)}\nsanitizer: {ev.sanitize(t, code)}", flush=True)


if __name__ == "__main__":
    main()
