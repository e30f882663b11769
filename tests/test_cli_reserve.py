"""The CLI over the fake cloud: exit codes, clear messages, and no credential anywhere."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from cloud_helpers import FAST, FULL, clean_os_env, held, make_key, mutations

from ggctl.cli import main


def run(argv, capsys):
    """Run `ggctl argv` in-process; returns (exit code, stdout, stderr)."""
    with pytest.raises(SystemExit) as exit_:
        main(argv)
    out = capsys.readouterr()
    return exit_.value.code, out.out, out.err


@pytest.fixture
def cli_env(fake_cloud, monkeypatch, tmp_path):
    """A clouds.yaml for alice (as Chameleon downloads it) and fast waits via GGCTL_*."""
    clean_os_env(monkeypatch, tmp_path)
    clouds = fake_cloud.clouds_yaml(tmp_path / "clouds.yaml")
    monkeypatch.setenv("OS_CLIENT_CONFIG_FILE", str(clouds))
    for key, value in FAST.items():
        monkeypatch.setenv(f"GGCTL_CLOUD__{key.upper()}", str(value))
    monkeypatch.setenv("COLUMNS", "200")
    return ["--state-dir", str(tmp_path / "state")], make_key(tmp_path)


def test_reserve_status_teardown(fake_cloud, cli_env, capsys):
    base, key = cli_env
    code, out, err = run(
        [*base, "reserve", "--os-cloud", "fake", "--key", str(key), "--dry-run"], capsys
    )
    assert code == 0, err
    assert "dry run" in err and "create" in err and held(fake_cloud) == {}

    code, out, err = run([*base, "reserve", "--os-cloud", "fake", "--key", str(key)], capsys)
    assert code == 0, err
    assert "node-0-alice" in out and held(fake_cloud) == FULL

    code, out, err = run([*base, "status", "--os-cloud", "fake", "-o", "json"], capsys)
    assert code == 0, err
    data = json.loads(out)
    assert data["lease"]["status"] == "ACTIVE" and len(data["nodes"]) == 3

    code, out, err = run([*base, "status", "--os-cloud", "fake", "-o", "yaml"], capsys)
    assert code == 0 and "floating_ip:" in out

    # Blazar 18 takes new dates for a flavor:instance lease
    code, out, err = run([*base, "extend", "--os-cloud", "fake", "--hours", "3"], capsys)
    assert code == 0, err
    assert "ACTIVE" in out and "UPDATING" not in out

    code, out, err = run([*base, "teardown", "--os-cloud", "fake", "--yes"], capsys)
    assert code == 0, err
    assert "nothing of yours is left" in out and held(fake_cloud) == {}


def test_no_credentials_is_a_clear_error(cli_env, capsys, monkeypatch):
    base, key = cli_env
    monkeypatch.delenv("OS_CLIENT_CONFIG_FILE")
    code, _out, err = run([*base, "reserve", "--key", str(key)], capsys)
    assert code == 1
    assert "no OpenStack credentials" in err and "clouds.yaml" in err
    assert "Traceback" not in err


def test_unknown_cloud_name(cli_env, capsys):
    base, _key = cli_env
    code, _out, err = run([*base, "status", "--os-cloud", "nope"], capsys)
    assert code == 1 and "nope" in err and "fake" in err


def test_wrong_password_is_a_clear_error(fake_cloud, cli_env, capsys, monkeypatch):
    base, key = cli_env
    monkeypatch.delenv("OS_CLIENT_CONFIG_FILE")
    for k, v in fake_cloud.env("alice").items():
        monkeypatch.setenv(k, v)
    monkeypatch.setenv("OS_PASSWORD", "wrong-password-123")
    code, out, err = run([*base, "reserve", "--key", str(key)], capsys)
    assert code == 1
    assert "refused the credentials" in err
    assert "wrong-password-123" not in out + err


def test_wrong_project_is_a_clear_error(fake_cloud, cli_env, capsys, monkeypatch):
    base, _key = cli_env
    monkeypatch.delenv("OS_CLIENT_CONFIG_FILE")
    for k, v in fake_cloud.env("bob").items():
        monkeypatch.setenv(k, v)
    monkeypatch.setenv("OS_PROJECT_NAME", "CHI-231095")  # alice's other project, not bob's
    monkeypatch.delenv("OS_PROJECT_ID")
    code, _out, err = run([*base, "status"], capsys)
    assert code == 1
    assert "CHI-231095" in err


def test_quota_error_exits_non_zero(fake_cloud, cli_env, capsys):
    base, key = cli_env
    fake_cloud.faults.quota("CHI-251409", instances=2)
    code, _out, err = run([*base, "reserve", "--os-cloud", "fake", "--key", str(key)], capsys)
    assert code == 1
    assert "quota exceeded" in err and "Traceback" not in err
    code, _out, err = run([*base, "teardown", "--os-cloud", "fake", "--yes"], capsys)
    assert code == 0 and held(fake_cloud) == {}


def test_restricted_application_credential_is_named(fake_cloud, cli_env, capsys):
    """Keystone refuses trusts from a restricted application credential; Blazar answers
    the lease create with a bare 500. ggctl says which credential and what to make."""
    fake_cloud.world.user("alice").app_cred_restricted = True
    base, key = cli_env
    code, _out, err = run([*base, "reserve", "--os-cloud", "fake", "--key", str(key)], capsys)
    assert code != 0
    assert "restricted" in err and '"unrestricted"' in err and "Traceback" not in err
    assert "leases" not in held(fake_cloud)
    # one refusal, not a retry loop: a new credential is the only fix
    assert len([m for m in mutations(fake_cloud) if "/leases" in m]) == 1


@pytest.mark.parametrize("auth", ["password", "application_credential"])
def test_credentials_never_appear_anywhere(fake_cloud, tmp_path, auth):
    """-vv logs every HTTP call; neither the secret nor a token may show up in stdout,
    stderr, the state dir or the files it writes."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OS_", "GGCTL_"))}
    env.update(fake_cloud.env("alice", auth=auth))
    env.update({f"GGCTL_CLOUD__{k.upper()}": str(v) for k, v in FAST.items()})
    env["HOME"] = str(tmp_path)
    env["XDG_CONFIG_HOME"] = str(tmp_path / "cfg")
    state = tmp_path / "state"
    key = make_key(tmp_path)
    outputs = []
    steps = (
        [["reserve", "--key", str(key)], ["teardown", "--yes"]]
        if auth == "password"
        else [["status", "-o", "json"]]
    )
    for args in steps:
        r = subprocess.run(
            [sys.executable, "-m", "ggctl", "-vv", "--state-dir", str(state), *args],
            capture_output=True,
            text=True,
            timeout=600,
            env=env,
        )
        assert r.returncode == 0, r.stderr[-3000:]
        outputs += [r.stdout, r.stderr]
        outputs += [p.read_text(errors="replace") for p in state.rglob("*") if p.is_file()]
    assert "DEBUG" in "".join(outputs)  # -vv really logged the HTTP traffic
    user = fake_cloud.world.user("alice")
    secrets = [user.password, user.app_cred_secret, *fake_cloud.world.tokens]
    for text in outputs:
        for secret in secrets:
            assert secret not in text
