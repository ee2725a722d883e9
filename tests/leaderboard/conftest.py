"""Fixtures of the leaderboard tests: one filled runs.db per session (see lb_helpers)."""

from __future__ import annotations

import pytest

from lb_helpers import Fixture, fill


@pytest.fixture(scope="session")
def filled(tmp_path_factory) -> Fixture:
    fx = fill(tmp_path_factory.mktemp("lb") / "runs.db")
    yield fx
    fx.store.close()
