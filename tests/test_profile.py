"""Load profiles: the challenge's numbers, time compression, truncation, think time, files."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from ggctl.errors import GgctlError
from ggctl.evaluate.profile import (
    BUILTIN,
    CHALLENGE,
    SMOKE,
    Profile,
    ProfileError,
    Stage,
    load_profile,
    load_profile_file,
)

# SPEC.md, "The evaluation protocol of the challenge": (minutes, users, max delay).
SPEC_TABLE = [
    (5, 20, 100),
    (2, 20, 50),
    (2, 20, 10),
    (1, 20, 3),
    (5, 20, 1),
    (5, 30, 1),
    (1, 20, 3),
    (2, 20, 60),
    (7, 20, 80),
]


class FixedRng:
    """uniform(a, b) returns the same fraction of the interval every time."""

    def __init__(self, fraction: float):
        self.fraction = fraction

    def uniform(self, a: float, b: float) -> float:
        return a + (b - a) * self.fraction


def test_challenge_is_the_spec_table():
    assert [(s.duration_s / 60, s.users, s.max_delay_s) for s in CHALLENGE.stages] == SPEC_TABLE
    assert CHALLENGE.total_duration_s == 30 * 60
    assert CHALLENGE.max_users == 30
    assert CHALLENGE.speed == 1.0


def test_smoke_is_short_and_builtin():
    assert SMOKE.total_duration_s <= 60
    assert set(BUILTIN) == {"challenge", "smoke"}


def test_scaled_divides_durations_and_delays_alike():
    fast = CHALLENGE.scaled(15)
    assert fast.total_duration_s == pytest.approx(120.0)
    assert fast.speed == 15
    for slow, quick in zip(CHALLENGE.stages, fast.stages, strict=True):
        assert quick.users == slow.users
        assert quick.duration_s == pytest.approx(slow.duration_s / 15)
        assert quick.max_delay_s == pytest.approx(slow.max_delay_s / 15)
    # 30 users with 1 s think time at 15x: at most 1/15 s between requests.
    assert fast.stages[5].max_delay_s == pytest.approx(1 / 15)
    assert CHALLENGE.scaled(3).scaled(5).speed == 15
    assert CHALLENGE.scaled(3).scaled(5).total_duration_s == pytest.approx(120.0)


@pytest.mark.parametrize("speed", [0, -1, float("inf"), float("nan")])
def test_scaled_rejects_bad_speed(speed):
    with pytest.raises(ValueError, match="speed"):
        CHALLENGE.scaled(speed)


def test_truncated_cuts_inside_a_stage():
    cut = CHALLENGE.truncated(8 * 60)  # 5 + 2 minutes, then 1 of the third stage's 2
    assert cut.total_duration_s == pytest.approx(480)
    assert [s.duration_s for s in cut.stages] == [300, 120, 60]
    assert cut.stages[-1].max_delay_s == 10
    assert CHALLENGE.truncated(10_000) is CHALLENGE
    assert CHALLENGE.scaled(15).truncated(20).total_duration_s == pytest.approx(20)
    with pytest.raises(ValueError):
        CHALLENGE.truncated(0)


def test_capped_limits_users_only():
    capped = CHALLENGE.capped(25)
    assert capped.max_users == 25
    assert capped.total_duration_s == CHALLENGE.total_duration_s
    assert [s.users for s in capped.stages] == [min(u, 25) for _, u, _ in SPEC_TABLE]


def test_stage_at_boundaries():
    p = Profile("p", (Stage(10, 1, 1), Stage(5, 2, 1)))
    assert p.stage_at(-1) == 0
    assert p.stage_at(0) == 0
    assert p.stage_at(9.999) == 0
    assert p.stage_at(10) == 1
    assert p.stage_at(14.9) == 1
    assert p.stage_at(15) is None
    assert p.stage_ends == (10, 15)


def test_think_time_within_a_stage_is_uniform_up_to_d():
    p = Profile("p", (Stage(100, 1, 2.0),))
    rng = random.Random(1)
    waits = [p.think_time(10.0, rng) for _ in range(2000)]
    assert min(waits) >= 0 and max(waits) <= 2.0
    assert sum(waits) / len(waits) == pytest.approx(1.0, abs=0.1)


def test_think_time_crossing_a_boundary_redraws_from_the_new_stage():
    p = Profile("p", (Stage(10, 1, 100.0), Stage(10, 1, 1.0)))
    # At t=5 a full 100 s wait would run into stage 2: wait 5 s to the boundary, then 1 s.
    assert p.think_time(5.0, FixedRng(1.0)) == pytest.approx(6.0)
    # A wait that ends inside the stage is kept as drawn.
    assert p.think_time(5.0, FixedRng(0.04)) == pytest.approx(4.0)
    # A wait past the end of the last stage just runs to the end.
    assert p.think_time(19.5, FixedRng(1.0)) == pytest.approx(0.5)
    assert p.think_time(25.0, FixedRng(1.0)) == 0.0


def test_dict_round_trip():
    p = CHALLENGE.scaled(15).truncated(50)
    again = Profile.from_dict(json.loads(json.dumps(p.to_dict())))
    assert again == p
    assert again.speed == 15


def test_load_profile_by_name_is_case_insensitive():
    assert load_profile("challenge") is CHALLENGE
    assert load_profile("CHALLENGE") is CHALLENGE
    assert load_profile("Smoke") is SMOKE


def test_load_profile_from_yaml(tmp_path: Path):
    f = tmp_path / "mine.yaml"
    f.write_text(
        "stages:\n"
        "  - {duration_s: 60, users: 5, max_delay_s: 2}\n"
        "  - duration_s: 30\n"
        "    users: 10\n"
        "    max_delay_s: 0.5\n"
    )
    p = load_profile(str(f))
    assert p.name == "mine"  # from the file name when the file has none
    assert p.stages == (Stage(60, 5, 2), Stage(30, 10, 0.5))
    assert p.total_duration_s == 90


def test_unknown_profile_is_a_user_error():
    with pytest.raises(GgctlError, match="unknown profile 'nope'") as err:
        load_profile("nope")
    assert "challenge" in (err.value.hint or "")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("stages: [\n", "not valid YAML"),
        ("- 1\n- 2\n", "expected a mapping"),
        ("name: x\n", "`stages` must be a non-empty list"),
        ("stages: []\n", "`stages` must be a non-empty list"),
        (
            "stages: [{duration_s: 1, users: 1, max_delay_s: 1}]\nspeeed: 2\n",
            r"unknown key\(s\) speeed",
        ),
        ("stages: [{duration_s: 60, users: 5}]\n", "stage 1: missing max_delay_s"),
        (
            "stages:\n - {duration_s: 60, users: 5, max_delay_s: 1}\n"
            " - {duration_s: 60, user: 5, max_delay_s: 1}\n",
            "stage 2: missing users; unknown user",
        ),
        ("stages: [{duration_s: 60, users: 0, max_delay_s: 1}]\n", "stage 1: users must be"),
        ("stages: [{duration_s: 60, users: ten, max_delay_s: 1}]\n", "stage 1: users must be"),
        ("stages: [{duration_s: 60, users: true, max_delay_s: 1}]\n", "stage 1: users must be"),
        ("stages: [{duration_s: 60, users: 2.5, max_delay_s: 1}]\n", "stage 1: users must be"),
        ("stages: [{duration_s: 0, users: 1, max_delay_s: 1}]\n", "stage 1: duration_s must be"),
        ("stages: [{duration_s: 60, users: 1, max_delay_s: -1}]\n", "stage 1: max_delay_s must be"),
        ("stages: [5]\n", "stage 1: expected a mapping"),
    ],
)
def test_bad_profile_files_say_what_is_wrong(tmp_path: Path, text: str, message: str):
    f = tmp_path / "bad.yaml"
    f.write_text(text)
    with pytest.raises(ProfileError, match=message) as err:
        load_profile_file(f)
    assert str(f) in err.value.message


def test_unreadable_profile_file(tmp_path: Path):
    with pytest.raises(ProfileError, match="cannot read profile"):
        load_profile_file(tmp_path / "missing.yaml")


def test_stage_and_profile_validation():
    with pytest.raises(ValueError):
        Profile("empty", ())
    with pytest.raises(ValueError):
        Stage(float("nan"), 1, 1)
    with pytest.raises(ValueError):
        CHALLENGE.capped(0)
