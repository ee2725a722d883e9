"""As root with a private home, kernelsmith's home moves to /var/lib/kernelsmith; an
endpoint configured earlier in ~/.kernelsmith/config.toml is still read."""

from kernelsmith import config
from kernelsmith.llm import endpoint


def test_legacy_config_is_read_when_the_home_moved(tmp_path, monkeypatch):
    monkeypatch.delenv("KERNELSMITH_HOME", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "root"))
    (tmp_path / "root" / ".kernelsmith").mkdir(parents=True)
    legacy = tmp_path / "root" / ".kernelsmith" / "config.toml"
    legacy.write_text('base_url = "http://127.0.0.1:9/v1"\n')
    monkeypatch.setattr(config, "home", lambda: tmp_path / "var-lib-kernelsmith")
    assert endpoint.config_path() == legacy
    assert endpoint.read_config()["base_url"] == "http://127.0.0.1:9/v1"


def test_the_home_config_wins_and_kernelsmith_home_is_exact(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path / "root"))
    (tmp_path / "root" / ".kernelsmith").mkdir(parents=True)
    (tmp_path / "root" / ".kernelsmith" / "config.toml").write_text('model = "old"\n')
    monkeypatch.setenv("KERNELSMITH_HOME", str(tmp_path / "ks"))
    assert endpoint.config_path() == tmp_path / "ks" / "config.toml"
