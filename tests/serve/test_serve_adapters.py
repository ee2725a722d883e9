"""The trainer adapters against a live loopback server (evaluators faked), each called the
way its library calls it. TRL, verl and OpenRLHF are not installed here (too heavy): the call
shapes are copied from their sources (TRL 1.16 GRPOTrainer._calculate_rewards; verl's
custom_reward_function; OpenRLHF's remote_rm_fn_ray payload)."""

from __future__ import annotations

import inspect
import json
import math
import urllib.request

import pytest

from kernelsmith.cli.serve import build_server
from kernelsmith.serve import adapters
from serve_fakes import TOKEN, Fakes, correct, kernel, reply, write_tasks

TABLE = {"fast": correct(2.0), "slow": correct(0.5)}


@pytest.fixture
def live(tmp_path):
    fakes = Fakes(TABLE)
    service, server = build_server([write_tasks(tmp_path)], port=0, token=TOKEN, gpus=[0],
                                   evaluator_factory=fakes.factory)
    server.serve_in_thread()
    yield server.url, fakes
    server.shutdown()
    server.server_close()
    service.close()


def test_trl_reward_called_like_grpo_trainer(live):
    url, fakes = live
    fn = adapters.make_trl_reward(url, TOKEN, task_column="task")
    assert fn.__name__ == "kernelsmith_reward"  # TRL logs rewards/<__name__>
    params = inspect.signature(fn).parameters
    assert "prompts" in params and "completions" in params
    prompts = [[{"role": "user", "content": "write relu"}]] * 3
    completions = [[{"role": "assistant", "content": reply("fast")}],
                   [{"role": "assistant", "content": reply("slow")}],
                   [{"role": "assistant", "content": "no idea"}]]
    # GRPOTrainer: reward_func(prompts=..., completions=..., completion_ids=..., **reward_kwargs) where
    # reward_kwargs holds every dataset column plus trainer_state, log_extra, log_metric
    out = fn(prompts=prompts, completions=completions, completion_ids=[[1, 2]] * 3, task=["relu"] * 3,
             trainer_state=object(), log_extra=lambda *a, **k: None, log_metric=lambda *a, **k: None)
    assert out == pytest.approx([math.log(2), math.log(0.5), -1.0])
    plain = adapters.make_trl_reward(url, TOKEN, reward="speedup")
    assert plain.__name__ == "kernelsmith_speedup"
    assert plain(prompts=["p"], completions=[reply("fast")], task=["gelu"]) == [2.0]
    with pytest.raises(ValueError, match="no 'task' column"):
        fn(prompts=["p"], completions=[reply("fast")])


def test_trl_get_callable_name_if_installed(live):
    utils = pytest.importorskip("trl.trainer.utils")
    fn = adapters.make_trl_reward(live[0], TOKEN, name="ks")
    assert utils.get_callable_name(fn) == "ks"


def test_adapter_errors_are_clear(live):
    url, _ = live
    fn = adapters.make_trl_reward(url, TOKEN)
    with pytest.raises(adapters.ServeError, match="unknown task 'conv'"):
        fn(prompts=["p"], completions=[reply("fast")], task=["conv"])
    with pytest.raises(adapters.ServeError, match="401"):
        adapters.make_trl_reward(url, "wrong-token-xxxxxxxx")(prompts=["p"], completions=["x"], task=["relu"])


def test_verl_compute_score(live, monkeypatch):
    url, fakes = live
    monkeypatch.setenv("KERNELSMITH_SERVE_URL", url)
    monkeypatch.setenv("KERNELSMITH_SERVE_TOKEN", TOKEN)
    # verl's default reward manager: compute_score(data_source=..., solution_str=..., ground_truth=..., extra_info=...)
    s = adapters.compute_score(data_source="kernelbench", solution_str=reply("fast"), ground_truth="relu",
                               extra_info={"index": 0})
    assert isinstance(s, float) and s == pytest.approx(math.log(2))
    s = adapters.compute_score("kernelbench", reply("slow"), None, {"task": "gelu"})
    assert s == pytest.approx(math.log(0.5))
    assert adapters.compute_score("kernelbench", "no code", "relu") == -1.0
    monkeypatch.setenv("KERNELSMITH_SERVE_REWARD", "staged")
    assert adapters.compute_score("kernelbench", reply("fast"), "relu") == pytest.approx(1.0)


def test_openrlhf_remote_rm_protocol(live):
    url, fakes = live
    example = f"Example:\n```python\n{kernel('from_prompt')}```\nWrite a faster one."
    prompts = [example, example, "Write relu."]
    responses = [reply("fast"), "Sorry, no.", reply("slow")]
    payload = {"query": [p + r for p, r in zip(prompts, responses)], "prompts": prompts,
               "labels": ["relu", "relu", "gelu"]}
    # OpenRLHF's client posts JSON with only a Content-Type header: the token rides in the URL
    req = urllib.request.Request(f"{url}/get_reward?token={TOKEN}", data=json.dumps(payload).encode(),
                                 headers={"Content-Type": "application/json"}, method="POST")
    with urllib.request.urlopen(req, timeout=10) as resp:
        body = json.loads(resp.read())
    assert body["rewards"] == pytest.approx([math.log(2), -1.0, math.log(0.5)])
    assert body["scores"] == body["rewards"] and body["extra_logs"]["correct"] == [1.0, 0.0, 1.0]
    assert "from_prompt" not in fakes.seen  # the prompt's example is never scored as the answer
    assert adapters.openrlhf_reward(url, payload["query"], prompts, payload["labels"], token=TOKEN) == \
        pytest.approx(body["rewards"])
    bad = urllib.request.Request(f"{url}/get_reward", data=json.dumps(payload).encode(), method="POST")
    with pytest.raises(urllib.error.HTTPError) as exc:
        urllib.request.urlopen(bad, timeout=10)
    assert exc.value.code == 401
