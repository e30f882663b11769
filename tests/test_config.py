"""Settings precedence: defaults → TOML file → GGCTL_* environment → flags."""

from pathlib import Path

import pytest

from ggctl.config import ConfigError, Settings, load_settings


@pytest.fixture(autouse=True)
def clean_env(monkeypatch, tmp_path):
    for name in list(__import__("os").environ):
        if name.startswith("GGCTL_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg-config"))
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "xdg-state"))


def write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "ggctl.toml"
    p.write_text(text)
    return p


def test_defaults_without_file(tmp_path):
    s = load_settings()
    assert s.serve.port == 5000
    assert s.serve.host == "127.0.0.1"
    assert s.state_dir == tmp_path / "xdg-state" / "ggctl"


def test_file_overrides_defaults(tmp_path):
    s = load_settings(write(tmp_path, "[serve]\nport = 7000\nthreads = 8\n"))
    assert (s.serve.port, s.serve.threads) == (7000, 8)
    assert s.serve.workers == Settings().serve.workers  # untouched keys keep their defaults


def test_env_overrides_file(tmp_path, monkeypatch):
    monkeypatch.setenv("GGCTL_SERVE__PORT", "7100")
    s = load_settings(write(tmp_path, "[serve]\nport = 7000\nthreads = 8\n"))
    assert s.serve.port == 7100
    assert s.serve.threads == 8


def test_flags_override_env_and_file(tmp_path, monkeypatch):
    monkeypatch.setenv("GGCTL_SERVE__PORT", "7100")
    cfg = write(tmp_path, "[serve]\nport = 7000\n")
    s = load_settings(cfg, {"serve": {"port": 7200, "threads": None}})
    assert s.serve.port == 7200
    assert s.serve.threads == Settings().serve.threads  # a flag left out (None) changes nothing


def test_default_config_file_is_read(tmp_path):
    cfg = tmp_path / "xdg-config" / "ggctl" / "config.toml"
    cfg.parent.mkdir(parents=True)
    cfg.write_text("[demo]\nspeed = 30\n")
    assert load_settings().demo.speed == 30


def test_ggctl_config_env_names_the_file(tmp_path, monkeypatch):
    monkeypatch.setenv("GGCTL_CONFIG", str(write(tmp_path, "[serve]\nworkers = 3\n")))
    assert load_settings().serve.workers == 3


def test_missing_explicit_file_is_an_error(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_settings(tmp_path / "nope.toml")


def test_bad_toml_names_the_file(tmp_path):
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_settings(write(tmp_path, "[serve\nport = "))


def test_bad_value_says_which_key(tmp_path):
    with pytest.raises(ConfigError, match=r"serve\.port"):
        load_settings(write(tmp_path, "[serve]\nport = 99999\n"))


def test_unknown_key_is_rejected(tmp_path):
    with pytest.raises(ConfigError, match=r"serve\.prot"):
        load_settings(write(tmp_path, "[serve]\nprot = 1\n"))


def test_bad_env_value_is_explained(monkeypatch):
    monkeypatch.setenv("GGCTL_SERVE__WORKERS", "many")
    with pytest.raises(ConfigError, match=r"serve\.workers"):
        load_settings()
