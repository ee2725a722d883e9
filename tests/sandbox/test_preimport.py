"""The fork server's pre-import: what it may and may not load before forking."""

import subprocess
import sys

from tests.gpu.conftest import ROOT

PROBE = """
import sys
from kernelsmith.harness import server
server._preimport()
print(sorted(m for m in ("torch.utils.cpp_extension", "setuptools", "kernelsmith.harness.evaluate",
                         "torch.utils.flop_counter") if m in sys.modules))
"""


def test_preimport_loads_the_build_tools_but_never_cpp_extension():
    """torch.utils.cpp_extension's import asks torch.cuda.is_available() on a CUDA build,
    which makes CUDA unusable in forked children (seen on the H200): the server must load
    what it imports (setuptools: 0.5 s a job) without loading it."""
    out = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, cwd=ROOT, timeout=300,
                         env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"})
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().splitlines()[-1] == str(["kernelsmith.harness.evaluate", "setuptools",
                                                        "torch.utils.flop_counter"])
