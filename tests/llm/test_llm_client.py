"""The real openai SDK against a real local HTTP server: request shape, usage, retries, failures."""

from __future__ import annotations

import json
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from kernelsmith.llm.client import OpenAIModel, make_model
from kernelsmith.llm.endpoint import resolve_endpoint
from kernelsmith.llm.extract import extract_code
from kernelsmith.llm.pricing import Price, PriceTable
from kernelsmith.llm.replay import RecordingModel, ReplayModel
from kernelsmith.llm.scripted import ScriptedModel
from kernelsmith.llm.types import LLMError, Sampling
from tests.llm.conftest import API_KEY
from tests.llm.fake_server import Drop, FakeOpenAIServer, Garbage, Reply, Sleep, Status

MSGS = [{"role": "system", "content": "be brief"}, {"role": "user", "content": "write a kernel"}]
PRICES = PriceTable({"my-model": Price(input=2.0, output=8.0, cached_input=0.5)})


def model(srv, name="my-model", **kw) -> OpenAIModel:
    kw.setdefault("backoff_s", 0.001)
    kw.setdefault("timeout_s", 5)
    kw.setdefault("prices", PRICES)
    return OpenAIModel(name, base_url=srv.base_url, api_key=API_KEY, **kw)


def test_request_shape_and_usage(fake_server):
    fake_server.push(Reply("hello", prompt_tokens=1000, completion_tokens=200, reasoning_tokens=50,
                           cached_tokens=400))
    out = model(fake_server).complete(MSGS, sampling=Sampling(temperature=0.3, top_p=0.9, max_tokens=123, seed=7))
    assert len(out) == 1 and out[0].text == "hello" and out[0].finish_reason == "stop"
    (req,) = fake_server.requests
    assert req.path == "/v1/chat/completions"
    assert req.headers["authorization"] == f"Bearer {API_KEY}"
    body = req.body
    assert body["model"] == "my-model" and body["messages"] == MSGS
    assert (body["temperature"], body["top_p"], body["max_tokens"], body["seed"]) == (0.3, 0.9, 123, 7)
    assert "n" not in body and "stream" not in body
    c = out[0]
    assert (c.usage.prompt_tokens, c.usage.completion_tokens) == (1000, 200)
    assert (c.usage.reasoning_tokens, c.usage.cached_tokens) == (50, 400)
    assert c.cost_usd == pytest.approx((600 * 2.0 + 400 * 0.5 + 200 * 8.0) / 1e6)
    assert c.price_known and not c.replayed
    assert c.call_id.startswith("chatcmpl-") and c.latency_s > 0 and c.model == "my-model"


def test_none_sampling_fields_are_left_out(fake_server):
    model(fake_server).complete(MSGS, sampling=Sampling(temperature=None, top_p=None, max_tokens=None, seed=None))
    body = fake_server.requests[0].body
    assert not {"temperature", "top_p", "max_tokens", "seed"} & set(body)


def test_unknown_model_price_and_missing_usage(fake_server):
    fake_server.push(Reply("x", usage=False))
    (c,) = model(fake_server, name="mystery-llm").complete(MSGS)
    assert c.cost_usd == 0 and c.price_known is False and c.usage.prompt_tokens == 0


def test_n_in_one_request(fake_server):
    fake_server.push(Reply(["a", "b", "c"], prompt_tokens=10, completion_tokens=30))
    out = model(fake_server).complete(MSGS, n=3, sampling=Sampling(seed=1))
    assert [c.text for c in out] == ["a", "b", "c"]
    assert len(fake_server.requests) == 1 and fake_server.requests[0].body["n"] == 3
    assert len({c.call_id for c in out}) == 1  # one call: usage is shared, count it once


def test_n_unsupported_falls_back_to_parallel_calls(fake_server):
    fake_server.supports_n = False
    m = model(fake_server)
    out = m.complete(MSGS, n=4, sampling=Sampling(seed=10))
    assert len(out) == 4 and m.supports_n is False
    bodies = [r.body for r in fake_server.requests]
    assert bodies[0]["n"] == 4 and all("n" not in b for b in bodies[1:]) and len(bodies) == 5
    assert sorted(b["seed"] for b in bodies[1:]) == [10, 11, 12, 13]  # distinct seeds, distinct samples
    fake_server.reset()
    m.complete(MSGS, n=2)  # learned: no more n requests
    assert len(fake_server.requests) == 2 and all("n" not in r.body for r in fake_server.requests)


def test_server_ignoring_n_gets_topped_up(fake_server):
    fake_server.push(Reply(["only one"]))
    out = model(fake_server).complete(MSGS, n=3)
    assert len(out) == 3 and len(fake_server.requests) == 3


def test_retry_429_honours_retry_after_then_500(fake_server):
    fake_server.push(Status(429, retry_after=0.3), Status(500), Reply("done"))
    m = model(fake_server)
    t0 = time.monotonic()
    (c,) = m.complete(MSGS)
    assert c.text == "done" and len(fake_server.requests) == 3
    assert time.monotonic() - t0 >= 0.3
    assert m.stats["retries"] == 2


def test_timeout_then_success(fake_server):
    fake_server.push(Sleep(1.0), Reply("late but fine"))
    (c,) = model(fake_server, timeout_s=0.25).complete(MSGS)
    assert c.text == "late but fine" and len(fake_server.requests) == 2


def test_connection_drop_then_success(fake_server):
    fake_server.push(Drop(), Reply("ok"))
    assert model(fake_server).complete(MSGS)[0].text == "ok"


def test_permanent_failure_after_max_retries(fake_server):
    fake_server.push(*[Status(503, "overloaded")] * 3)
    with pytest.raises(LLMError, match=r"gave up after 3 attempts.*HTTP 503"):
        model(fake_server, max_retries=2).complete(MSGS)
    assert len(fake_server.requests) == 3


def test_bad_key_fails_at_once_with_a_clear_message(fake_server):
    m = OpenAIModel("my-model", base_url=fake_server.base_url, api_key="wrong", backoff_s=0.001, prices=PRICES)
    with pytest.raises(LLMError, match="API key was rejected.*OPENAI_API_KEY or KERNELSMITH_API_KEY"):
        m.complete(MSGS)
    assert len(fake_server.requests) == 1
    assert fake_server.requests[0].headers["authorization"] == "Bearer wrong"


@pytest.mark.parametrize("status, message, pattern", [
    (404, "The model `nope` does not exist", "model not found: 'my-model'"),
    (403, "not allowed", "access denied"),
    (400, "This model's maximum context length is 8192 tokens", "rejected the request.*shorten the prompt"),
    (429, "You exceeded your current quota", "out of quota"),
])
def test_permanent_errors_are_not_retried(fake_server, status, message, pattern):
    code = "insufficient_quota" if status == 429 else None
    fake_server.push(Status(status, message, err_code=code), Reply("never"))
    with pytest.raises(LLMError, match=pattern):
        model(fake_server).complete(MSGS)
    assert len(fake_server.requests) == 1


def test_max_tokens_renamed_when_the_model_wants_max_completion_tokens(fake_server):
    fake_server.push(Status(400, "Unsupported parameter: 'max_tokens' is not supported with this model. "
                                 "Use 'max_completion_tokens' instead.", param="max_tokens"),
                     Status(400, "Unsupported value: 'temperature' does not support 0.8 with this model. "
                                 "Only the default (1) value is supported.", param="temperature"))
    m = model(fake_server)
    assert m.complete(MSGS)[0].text == "ok"
    last = fake_server.requests[-1].body
    assert "max_tokens" not in last and last["max_completion_tokens"] == 8192 and "temperature" not in last
    m.complete(MSGS)
    assert len(fake_server.requests) == 4  # learned once, no more 400s


def test_garbage_body_is_retried_then_fails(fake_server):
    fake_server.push(Garbage(), Garbage(content_type="text/html"), Garbage(b'{"foo": 1}'))
    with pytest.raises(LLMError, match="malformed response"):
        model(fake_server, max_retries=2).complete(MSGS)
    assert len(fake_server.requests) == 3


def test_garbage_then_good_reply(fake_server):
    fake_server.push(Garbage(), Reply("fine"))
    assert model(fake_server).complete(MSGS)[0].text == "fine"


def test_reply_without_code_is_a_format_error_not_an_exception(fake_server):
    fake_server.push(Reply("I am sorry, I cannot help with CUDA today."))
    (c,) = model(fake_server).complete(MSGS)
    code, err = extract_code(c.text)
    assert code is None and "no `class ModelNew`" in err


def test_megabyte_completion(fake_server):
    body = "class ModelNew:\n    pass\n" + "# filler line of a very long reply\n" * 30000
    text = "Here you go.\n```python\n" + body + "```\n" + "trailing prose " * 1000
    assert len(text) > 1_000_000
    fake_server.push(Reply(text), Reply(text))
    (c,) = model(fake_server).complete(MSGS)
    assert c.text == text and c.finish_reason == "stop"
    code, err = extract_code(c.text)
    assert code is None and "KB" in err  # too big to be a candidate: a format error, no crash
    (cut,) = model(fake_server, max_chars=100_000).complete(MSGS)
    assert len(cut.text) == 100_000 and cut.finish_reason == "length"


def test_parallel_calls_overlap(open_server):
    open_server.default = Reply("ok", delay=0.3)
    m = OpenAIModel("my-model", base_url=open_server.base_url, prices=PRICES)
    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(lambda _: m.complete(MSGS), range(8)))
    assert all(r[0].text == "ok" for r in results)
    assert open_server.max_inflight >= 4  # the requests overlapped at the server (no wall-clock assert)


def test_concurrency_is_bounded(open_server):
    open_server.default = Reply("ok", delay=0.1)
    m = OpenAIModel("my-model", base_url=open_server.base_url, prices=PRICES, max_concurrency=2)
    with ThreadPoolExecutor(6) as pool:
        list(pool.map(lambda _: m.complete(MSGS), range(6)))
    assert open_server.max_inflight <= 2 and len(open_server.requests) == 6


def test_connection_refused_fails_after_retries():
    with FakeOpenAIServer() as srv:
        url = srv.base_url
    m = OpenAIModel("my-model", base_url=url, max_retries=1, backoff_s=0.001, prices=PRICES)
    with pytest.raises(LLMError, match="connection error"):
        m.complete(MSGS)


# --- endpoint, prices, make_model ----------------------------------------------------
def test_resolve_endpoint_precedence(monkeypatch, clean_llm_env):
    with pytest.raises(LLMError, match="OPENAI_API_KEY.*KERNELSMITH_BASE_URL"):
        resolve_endpoint(None, None)
    (clean_llm_env / "config.toml").write_text('[llm]\nbase_url = "http://cfg/v1"\nmodel = "cfg-model"\n')
    assert resolve_endpoint(None, None) == ("http://cfg/v1", "none", "cfg-model")
    monkeypatch.setenv("OPENAI_API_KEY", "sk-openai")
    monkeypatch.setenv("OPENAI_BASE_URL", "http://openai-env/v1")
    assert resolve_endpoint(None, None)[:2] == ("http://openai-env/v1", "sk-openai")
    monkeypatch.setenv("KERNELSMITH_API_KEY", "sk-ks")
    monkeypatch.setenv("KERNELSMITH_BASE_URL", "http://ks-env/v1/")
    assert resolve_endpoint(None, None)[:2] == ("http://ks-env/v1", "sk-ks")
    assert resolve_endpoint("http://flag/v1", "sk-flag")[:2] == ("http://flag/v1", "sk-flag")


def test_key_only_means_the_default_openai_url(monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-x")
    ep = resolve_endpoint(None, None)
    assert ep.base_url is None and ep.api_key == "sk-x"


def test_local_server_without_key_sends_placeholder(open_server):
    m = OpenAIModel("local-model", base_url=open_server.base_url, prices=PRICES)
    m.complete(MSGS)
    assert open_server.requests[0].headers["authorization"] == "Bearer none"


def test_price_table_prefixes_and_files(tmp_path, monkeypatch):
    t = PriceTable()
    assert t.lookup("gpt-4o-mini-2024-07-18") == t.prices["gpt-4o-mini"]
    assert t.lookup("openai/gpt-4o") == t.prices["gpt-4o"]
    assert t.lookup("llama-3-70b") is None
    (tmp_path / "p.json").write_text(json.dumps({"prices": {"llama": {"input": 1, "output": 2}}}))
    (tmp_path / "p.toml").write_text('[prices."llama"]\ninput = 3\noutput = 4\ncached_input = 1\n')
    assert PriceTable.load(tmp_path / "p.json").lookup("llama-3") == Price(1.0, 2.0)
    monkeypatch.setenv("KERNELSMITH_PRICES", str(tmp_path / "p.toml"))
    env = PriceTable.from_env()
    assert env.lookup("llama-3") == Price(3.0, 4.0, 1.0) and env.lookup("gpt-4o") is not None
    (tmp_path / "bad.json").write_text('{"x": {"input": "free"}}')
    with pytest.raises(LLMError, match="entry 'x' needs numbers"):
        PriceTable.load(tmp_path / "bad.json")


def test_make_model_specs(tmp_path, open_server):
    (tmp_path / "s.json").write_text(json.dumps(["one", "two"]))
    scripted = make_model(f"scripted:{tmp_path / 's.json'}")
    assert isinstance(scripted, ScriptedModel) and [c.text for c in scripted.complete(MSGS, n=3)] == ["one", "two", "one"]
    live = make_model("my-model", base_url=open_server.base_url, prices=PRICES, record=str(tmp_path / "rec.jsonl"))
    assert isinstance(live, RecordingModel) and isinstance(live.inner, OpenAIModel)
    live.complete(MSGS)
    replay = make_model(f"replay:{tmp_path / 'rec.jsonl'}")
    assert isinstance(replay, ReplayModel) and replay.name == f"replay:{tmp_path / 'rec.jsonl'}"
    assert replay.complete(MSGS)[0].replayed
    with pytest.raises(LLMError, match="no model name"):
        make_model("", base_url=open_server.base_url)


def test_thread_safety_of_stats(open_server):
    m = OpenAIModel("my-model", base_url=open_server.base_url, prices=PRICES)
    threads = [threading.Thread(target=m.complete, args=(MSGS,)) for _ in range(10)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert m.stats["requests"] == 10 == len(open_server.requests)


def test_retry_after_forms():
    import email.utils

    from kernelsmith.llm.client import _retry_after

    class R:
        def __init__(self, **h):
            self.headers = h

    assert _retry_after(R(**{"retry-after": "2.5"})) == 2.5
    assert _retry_after(R(**{"retry-after-ms": "150"})) == 0.15
    when = email.utils.formatdate(time.time() + 30, usegmt=True)
    assert 25 < _retry_after(R(**{"retry-after": when})) <= 31
    assert _retry_after(R(**{"retry-after": "soon"})) is None and _retry_after(R()) is None


def test_responder_answers_by_prompt(open_server):
    open_server.responder = lambda body: Reply(body["messages"][-1]["content"].upper())
    m = OpenAIModel("my-model", base_url=open_server.base_url, prices=PRICES)
    assert m.complete([{"role": "user", "content": "echo me"}])[0].text == "ECHO ME"
