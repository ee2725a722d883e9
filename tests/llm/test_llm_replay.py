"""Recording a live session and replaying it without an endpoint; the scripted model."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor

import pytest

from kernelsmith.llm.client import OpenAIModel
from kernelsmith.llm.pricing import Price, PriceTable
from kernelsmith.llm.replay import RecordingModel, ReplayModel, messages_hash
from kernelsmith.llm.scripted import ScriptedModel
from kernelsmith.llm.types import LLMError, Sampling
from tests.llm.fake_server import Reply


def prompt(i: int) -> list[dict[str, str]]:
    return [{"role": "system", "content": "sys"}, {"role": "user", "content": f"task {i}"}]


def test_record_then_replay_round_trip(open_server, tmp_path):
    path = tmp_path / "session.jsonl"
    open_server.push(Reply(["a0", "b0"], prompt_tokens=100, completion_tokens=40, reasoning_tokens=7),
                     Reply("a1"), Reply("a2"))
    live = RecordingModel(OpenAIModel("gpt-4o", base_url=open_server.base_url,
                                      prices=PriceTable({"gpt-4o": Price(1, 2)})), path)
    recorded = [live.complete(prompt(0), n=2, sampling=Sampling(seed=3)), live.complete(prompt(1)),
                live.complete(prompt(2))]
    lines = [json.loads(x) for x in path.read_text().splitlines()]
    assert len(lines) == 3 and lines[0]["hash"] == messages_hash(prompt(0)) and lines[0]["n"] == 2
    assert lines[0]["sampling"]["seed"] == 3 and lines[0]["model"] == "gpt-4o"

    replay = ReplayModel(path)
    assert replay.name == f"replay:{path}" and replay.remaining == 3
    # asked out of order: matched by prompt hash
    r2, r0, r1 = replay.complete(prompt(2)), replay.complete(prompt(0), n=2), replay.complete(prompt(1))
    assert [c.text for c in r0] == ["a0", "b0"] and r1[0].text == "a1" and r2[0].text == "a2"
    assert all(c.replayed for c in r0 + r1 + r2) and replay.mismatches == 0
    want = recorded[0][0]
    assert (r0[0].usage, r0[0].cost_usd, r0[0].model) == (want.usage, want.cost_usd, want.model)
    assert r0[0].usage.reasoning_tokens == 7 and r0[0].call_id.startswith("replay:session.jsonl:1")
    with pytest.raises(LLMError, match="exhausted: all 3 recorded calls"):
        replay.complete(prompt(0))
    assert len(open_server.requests) == 3  # replay never touched the server


def test_unmatched_prompt_takes_next_in_order(tmp_path):
    path = tmp_path / "s.jsonl"
    rec = RecordingModel(ScriptedModel(["first", "second"]), path)
    rec.complete(prompt(0))
    rec.complete(prompt(1))
    replay = ReplayModel(path)
    assert replay.complete(prompt(99))[0].text == "first" and replay.mismatches == 1
    assert replay.complete(prompt(1))[0].text == "second"
    with pytest.raises(LLMError, match="exhausted"):
        replay.complete(prompt(0))


def test_concurrent_recording_writes_whole_lines(tmp_path):
    path = tmp_path / "c.jsonl"
    rec = RecordingModel(ScriptedModel(lambda msgs, i: "x" * 5000 + msgs[-1]["content"]), path)
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda i: rec.complete(prompt(i)), range(32)))
    lines = [json.loads(x) for x in path.read_text().splitlines()]
    assert len(lines) == 32
    replay = ReplayModel(path)
    assert replay.complete(prompt(17))[0].text.endswith("task 17")


def test_replay_errors(tmp_path):
    with pytest.raises(LLMError, match="cannot read the recorded session"):
        ReplayModel(tmp_path / "missing.jsonl")
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"hash": "x"}\n')
    with pytest.raises(LLMError, match="line 1 is not a recorded call"):
        ReplayModel(bad)


def test_scripted_model(tmp_path):
    m = ScriptedModel(["a", "b"], cycle=False)
    assert [c.text for c in m.complete(prompt(0), n=2)] == ["a", "b"] and m.calls == [prompt(0)]
    with pytest.raises(LLMError, match="scripted replies were used"):
        m.complete(prompt(0))
    (tmp_path / "bad.json").write_text('{"replies": [1, 2]}')
    with pytest.raises(LLMError, match="JSON list of reply strings"):
        ScriptedModel.from_file(tmp_path / "bad.json")
