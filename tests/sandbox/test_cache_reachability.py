"""A cache that nobody cannot reach, given in the config (not through KERNELSMITH_HOME):
the process sandbox runs jobs as the current user instead of failing every job."""
import os, tempfile, pytest
from kernelsmith.config import EvalConfig
from kernelsmith.evaluate.evaluator import Evaluator
from kernelsmith.sandbox.local import LocalSandbox

@pytest.mark.skipif(os.geteuid() != 0, reason="as root only")
def test_private_cache_as_root(tmp_path):
    """Was: RuntimeError "sandboxed jobs run as nobody and cannot reach the cache" (only where
    nobody can reach the interpreter; under /root, jobs run as root anyway)."""
    private = tmp_path / "private"; private.mkdir(mode=0o700); private.chmod(0o700)
    (private / "cache").mkdir()
    sb = LocalSandbox()
    ev = Evaluator(EvalConfig(cache_dir=private / "cache"), sandbox=sb)
    assert sb.drop_privileges is False and "current user" in sb.describe()
