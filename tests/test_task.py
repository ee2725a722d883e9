from pathlib import Path

import pytest

from kernelsmith.task import Task, TaskError, content_hash

GOOD = '''
import torch, torch.nn as nn
class Model(nn.Module):
    def forward(self, x):
        return x * 2
def get_inputs():
    return [torch.randn(4)]
def get_init_inputs():
    return []
'''


def test_loads_and_hashes(tmp_path: Path):
    p = tmp_path / "t.py"
    p.write_text(GOOD)
    t = Task.load(p)
    assert t.name == "t" and len(t.hash) == 64
    assert t.hash == content_hash(GOOD + "\n\n")  # trailing whitespace does not change identity
    assert t.hash != content_hash(GOOD.replace("x * 2", "x * 3"))


@pytest.mark.parametrize("source,needle", [
    ("def broken(:\n", "syntax error at line 1"),
    (GOOD.replace("class Model", "class Other"), "lacks class Model"),
    (GOOD.replace("def get_inputs", "def other_inputs"), "lacks function get_inputs"),
    (GOOD.replace("def get_init_inputs", "def x"), "lacks function get_init_inputs"),
])
def test_rejects_malformed(tmp_path: Path, source, needle):
    p = tmp_path / "t.py"
    p.write_text(source)
    with pytest.raises(TaskError, match=needle):
        Task.load(p)


def test_missing_file(tmp_path: Path):
    with pytest.raises(TaskError, match="not found"):
        Task.load(tmp_path / "nope.py")


def test_every_suite_task_is_valid():
    root = Path(__file__).resolve().parents[1] / "tasks"
    tasks = sorted(root.rglob("*.py"))
    assert tasks, "tasks/ is empty"
    hashes = {Task.load(p).hash for p in tasks}
    assert len(hashes) == len(tasks)
