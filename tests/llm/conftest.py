"""Fixtures of the LLM tests: a live fake OpenAI server and a clean endpoint environment."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

_ROOT = str(Path(__file__).resolve().parents[2])
if _ROOT not in sys.path:  # so `from tests.llm.fake_server import ...` works under plain `pytest` too
    sys.path.insert(0, _ROOT)

from tests.llm.fake_server import FakeOpenAIServer  # noqa: E402

API_KEY = "sk-test-123"
_ENV = ("OPENAI_API_KEY", "OPENAI_BASE_URL", "OPENAI_ORG_ID", "OPENAI_PROJECT_ID", "KERNELSMITH_API_KEY",
        "KERNELSMITH_BASE_URL", "KERNELSMITH_MODEL", "KERNELSMITH_PRICES")


@pytest.fixture(autouse=True)
def clean_llm_env(monkeypatch, tmp_path):
    """No endpoint settings leak in from the machine; KERNELSMITH_HOME is an empty temp dir."""
    for name in _ENV:
        monkeypatch.delenv(name, raising=False)
    home = tmp_path / "ks_home"
    home.mkdir()
    monkeypatch.setenv("KERNELSMITH_HOME", str(home))
    return home


@pytest.fixture
def fake_server():
    """A started FakeOpenAIServer that wants `Bearer sk-test-123`."""
    with FakeOpenAIServer(api_key=API_KEY) as srv:
        yield srv


@pytest.fixture
def open_server():
    """A started FakeOpenAIServer that accepts any key (a local server)."""
    with FakeOpenAIServer() as srv:
        yield srv
