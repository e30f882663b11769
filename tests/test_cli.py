"""The CLI's contract: every command documented, readable errors, global options."""

import json
import subprocess
import sys

import pytest

JOURNEY = ["reserve", "cluster", "build", "deploy", "evaluate", "status", "teardown"]


def ggctl(*args, env=None, cwd=None):
    return subprocess.run(
        [sys.executable, "-m", "ggctl", *args],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
        cwd=cwd,
    )


COMMANDS = [
    *JOURNEY,
    "up",
    "down",
    "extend",
    "ssh",
    "kubectl",
    "report",
    "demo",
    "serve",
    "config",
    "model",
]


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_has_help(command):
    r = ggctl(command, "--help")
    assert r.returncode == 0, r.stderr
    assert "Usage:" in r.stdout and "not yet available" not in r.stdout


def test_help_lists_every_command():
    r = ggctl("--help")
    assert r.returncode == 0
    for command in COMMANDS:
        assert command in r.stdout


def test_help_shows_the_journey_in_its_order_and_every_command_in_a_panel():
    from ggctl.cli import cli

    r = ggctl("--help")
    lines = r.stdout.splitlines()
    journey = next(i for i, line in enumerate(lines) if "The journey" in line)
    listed = [line.split()[1] for line in lines[journey + 1 :] if line.startswith("│ ")]
    steps = [name for name in listed if name in JOURNEY and name != "status"]
    assert steps == ["reserve", "cluster", "build", "deploy", "evaluate", "teardown"]
    # A command outside every panel would land in rich-click's catch-all "Commands" panel.
    assert "Commands" not in r.stdout
    assert set(cli.commands) <= set(listed)


def test_version():
    r = ggctl("--version")
    assert r.returncode == 0
    assert "ggctl" in r.stdout


def test_unknown_option_is_a_usage_error():
    r = ggctl("serve", "--no-such-flag")
    assert r.returncode == 2
    assert "No such option" in r.stderr


def test_config_show_applies_all_layers(tmp_path, monkeypatch):
    cfg = tmp_path / "c.toml"
    cfg.write_text("[serve]\nport = 7000\nthreads = 8\n")
    env = {k: v for k, v in __import__("os").environ.items() if not k.startswith("GGCTL_")}
    env["GGCTL_SERVE__THREADS"] = "3"
    r = ggctl("--config", str(cfg), "--state-dir", str(tmp_path / "st"), "config", "show", env=env)
    assert r.returncode == 0, r.stderr
    data = json.loads(r.stdout)
    assert data["serve"]["port"] == 7000
    assert data["serve"]["threads"] == 3
    assert data["state_dir"] == str(tmp_path / "st")


def test_bad_config_is_one_clear_line_not_a_traceback(tmp_path):
    cfg = tmp_path / "c.toml"
    cfg.write_text("[serve]\nport = 'eighty'\n")
    r = ggctl("--config", str(cfg), "config", "show")
    assert r.returncode == 1
    assert "serve.port" in r.stderr
    assert "Traceback" not in r.stderr


def test_serve_refuses_a_model_that_is_not_onnx(tmp_path):
    bad = tmp_path / "model.onnx"
    bad.write_bytes(b"not a model")
    r = ggctl("--state-dir", str(tmp_path), "serve", "--model", str(bad), "--port", "0")
    assert r.returncode == 1
    assert "not a loadable ONNX model" in r.stderr
    assert "Traceback" not in r.stderr
