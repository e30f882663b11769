"""A cloud that accepts connections and never answers (a wedged API process behind a live
load balancer): reserve, status, extend and teardown end in one clear message within the
configured API timeout ([cloud] api_timeout → GGCTL_CLOUD__API_TIMEOUT → --api-timeout),
instead of waiting for ever. The fake hangs for real (the request is read, no byte comes
back); the clients are the real keystoneauth, openstacksdk and blazarclient."""

from __future__ import annotations

import pytest
from cloud_helpers import argv_for, cli_setup, ggctl

# Which call each command makes for sure (as in test_cloud_errors).
COMMANDS = {
    "reserve": ("GET", r"/network/v2\.0/networks"),
    "status": ("GET", r"/network/v2\.0/networks"),
    "extend": ("GET", r"/reservation/v1/leases$"),
    "teardown": ("GET", r"/network/v2\.0/networks"),
}
TIMEOUT = "0.5"


@pytest.fixture
def cli_env(fake_cloud, monkeypatch, tmp_path):
    return cli_setup(fake_cloud, monkeypatch, tmp_path)


@pytest.mark.parametrize("command", list(COMMANDS))
def test_a_hung_cloud_ends_in_one_message(fake_cloud, cli_env, capsys, command):
    state, key = cli_env
    if command == "extend":  # it needs a lease to get as far as the hung call
        code, _, err = ggctl(["--state-dir", str(state), "reserve", "--key", str(key)], capsys)
        assert code == 0, err
    method, path = COMMANDS[command]
    rule = fake_cloud.faults.fail(method, path, hang=True, times=-1)
    argv = ["--state-dir", str(state), *argv_for(command, key), "--api-timeout", TIMEOUT]
    code, _, err = ggctl(argv, capsys)
    assert code == 1, err
    assert "Traceback" not in err and err.count("error:") == 1, err
    flat = " ".join(err.split())
    assert "did not answer within the API timeout" in flat and "timed out" in flat, err
    assert "--api-timeout" in flat and "rerun" in flat
    # a timed-out request is retried once, not `retries` times: two waits, no more
    assert 1 <= rule.fired <= 2, rule.fired
    assert "Traceback" in (state / "errors.log").read_text()
    code, _, err = ggctl(["-v", *argv], capsys)
    assert code == 1 and "Traceback" in err and "ConnectTimeout" in err


def test_a_hung_keystone_names_the_timeout_the_flag_set(fake_cloud, cli_env, capsys, monkeypatch):
    """The flag beats the environment, which beats the config file."""
    state, _key = cli_env
    monkeypatch.setenv("GGCTL_CLOUD__API_TIMEOUT", "45")
    rule = fake_cloud.faults.fail("POST", r"/identity/v3/auth/tokens$", hang=True, times=-1)
    code, _, err = ggctl(["--state-dir", str(state), "status", "--api-timeout", "0.4"], capsys)
    assert code == 1 and "Traceback" not in err, err
    flat = " ".join(err.split())
    assert "Keystone at" in flat and "did not answer within 0.4 s" in flat, err
    assert "--api-timeout" in flat
    assert rule.fired == 1


def test_api_timeout_from_the_config_file(fake_cloud, cli_env, capsys, tmp_path):
    state, _key = cli_env
    config = tmp_path / "ggctl.toml"
    config.write_text("[cloud]\napi_timeout = 0.3\n")
    fake_cloud.faults.fail("POST", r"/identity/v3/auth/tokens$", hang=True, times=-1)
    code, _, err = ggctl(["--config", str(config), "--state-dir", str(state), "status"], capsys)
    assert code == 1 and "did not answer within 0.3 s" in " ".join(err.split()), err


def test_a_timed_out_step_is_retried_once(fake_cloud, cli_env, capsys):
    """Busy answers and resets get `retries` more tries; silence only one: each costs a whole
    API timeout, and a service silent twice in a row is down, not busy."""
    state, key = cli_env
    rule = fake_cloud.faults.fail("POST", r"/network/v2\.0/routers$", hang=True, times=-1)
    argv = ["--state-dir", str(state), "reserve", "--key", str(key), "--api-timeout", TIMEOUT]
    code, _, err = ggctl(argv, capsys)
    assert code == 1 and "Traceback" not in err, err
    assert "could not create router" in " ".join(err.split()), err
    assert rule.fired == 2  # FAST allows 3 retries of a transient error


def test_down_takes_the_flag_to_its_teardown(fake_cloud, cli_env, capsys):
    state, _key = cli_env
    fake_cloud.faults.fail("POST", r"/identity/v3/auth/tokens$", hang=True, times=-1)
    argv = ["--state-dir", str(state), "down", "--yes", "--api-timeout", "0.4"]
    code, _, err = ggctl(argv, capsys)
    assert code == 1 and "did not answer within 0.4 s" in " ".join(err.split()), err
