"""Load profiles: stages of concurrent users with a random think time, as in the challenge.

A profile is data (a list of stages), so the same definition drives `ggctl demo` on
loopback and `ggctl evaluate` against a cluster. Time compression (`scaled`) divides
durations *and* think times by the same factor, so the offered load per user is the
profile's, only faster: at speed 15 the 30-minute challenge runs in 2 minutes.

Profile files are YAML (or JSON, which YAML reads too)::

    name: my-profile
    stages:
      - {duration_s: 300, users: 20, max_delay_s: 100}
      - {duration_s: 120, users: 30, max_delay_s: 1}
"""

from __future__ import annotations

import bisect
import math
import random
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import yaml

from ggctl.errors import GgctlError


class ProfileError(GgctlError):
    """A load profile that cannot be used: unknown name, unreadable file, bad stage."""


@dataclass(frozen=True)
class Stage:
    """A stretch of the load test: `users` concurrent users for `duration_s` seconds.

    Between two requests each user waits uniform(0, `max_delay_s`) seconds, like siege's
    `-d` in the course's `load_test.sh`.
    """

    duration_s: float
    users: int
    max_delay_s: float

    def __post_init__(self) -> None:
        if not (
            isinstance(self.duration_s, (int, float))
            and math.isfinite(self.duration_s)
            and self.duration_s > 0
        ):
            raise ValueError(f"duration_s must be a number > 0, got {self.duration_s!r}")
        if isinstance(self.users, bool) or not isinstance(self.users, int) or self.users < 1:
            raise ValueError(f"users must be a whole number >= 1, got {self.users!r}")
        if not (
            isinstance(self.max_delay_s, (int, float))
            and math.isfinite(self.max_delay_s)
            and self.max_delay_s >= 0
        ):
            raise ValueError(f"max_delay_s must be a number >= 0, got {self.max_delay_s!r}")


@dataclass(frozen=True)
class Profile:
    """A named sequence of stages. `speed` records how much it was compressed (1: real time)."""

    name: str
    stages: tuple[Stage, ...]
    speed: float = 1.0
    _ends: tuple[float, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not self.stages:
            raise ValueError("a profile needs at least one stage")
        object.__setattr__(self, "stages", tuple(self.stages))
        ends, t = [], 0.0
        for stage in self.stages:
            t += stage.duration_s
            ends.append(t)
        object.__setattr__(self, "_ends", tuple(ends))

    @property
    def total_duration_s(self) -> float:
        """Length of the whole profile in (possibly compressed) seconds."""
        return self._ends[-1]

    @property
    def stage_ends(self) -> tuple[float, ...]:
        """Cumulative end time of each stage, seconds from the start."""
        return self._ends

    @property
    def max_users(self) -> int:
        """The most concurrent users any stage asks for."""
        return max(s.users for s in self.stages)

    def stage_at(self, t: float) -> int | None:
        """Index of the stage running at `t` s (stages are [start, end)); None after the end."""
        if t < 0:
            return 0
        i = bisect.bisect_right(self._ends, t)
        return i if i < len(self.stages) else None

    def scaled(self, speed: float) -> Profile:
        """The same profile `speed` times faster: durations and think times divided by `speed`."""
        if not (math.isfinite(speed) and speed > 0):
            raise ValueError(f"speed must be a number > 0, got {speed!r}")
        stages = tuple(
            Stage(s.duration_s / speed, s.users, s.max_delay_s / speed) for s in self.stages
        )
        return replace(self, stages=stages, speed=self.speed * speed)

    def truncated(self, duration_s: float) -> Profile:
        """The first `duration_s` seconds of the profile (the last stage kept is shortened)."""
        if not (math.isfinite(duration_s) and duration_s > 0):
            raise ValueError(f"duration must be a number > 0, got {duration_s!r}")
        if duration_s >= self.total_duration_s:
            return self
        stages, start = [], 0.0
        for stage, end in zip(self.stages, self._ends, strict=True):
            if start >= duration_s:
                break
            stages.append(replace(stage, duration_s=min(end, duration_s) - start))
            start = end
        return replace(self, stages=tuple(stages))

    def capped(self, max_users: int) -> Profile:
        """The profile with no stage above `max_users` users (for machines too small for it)."""
        if max_users < 1:
            raise ValueError(f"max_users must be >= 1, got {max_users!r}")
        return replace(
            self, stages=tuple(replace(s, users=min(s.users, max_users)) for s in self.stages)
        )

    def think_time(self, t: float, rng: random.Random | None = None) -> float:
        """Seconds a user that finished a request at `t` waits before its next one.

        The course ran one siege per minute, so a new delay setting took effect at once.
        A wait drawn in one stage that would run into the next therefore ends at the
        boundary, and the user draws again from the new stage's delay from there.
        """
        rng = rng or random
        waited = 0.0
        while True:
            i = self.stage_at(t)
            if i is None:
                return waited
            end = self._ends[i]
            delay = rng.uniform(0.0, self.stages[i].max_delay_s)
            if t + delay <= end:
                return waited + delay
            waited += end - t
            t = end

    def to_dict(self) -> dict[str, Any]:
        """A plain dict that `Profile.from_dict` (and the YAML loader) reads back."""
        return {
            "name": self.name,
            "speed": self.speed,
            "stages": [
                {"duration_s": s.duration_s, "users": s.users, "max_delay_s": s.max_delay_s}
                for s in self.stages
            ],
        }

    @classmethod
    def from_dict(cls, data: Any, source: str = "profile") -> Profile:
        """Build a profile from parsed YAML/JSON, with errors that name the bad field."""
        if not isinstance(data, dict):
            raise ProfileError(
                f"{source}: expected a mapping with `name` and `stages`, got {type(data).__name__}",
                hint=_FORMAT_HINT,
            )
        unknown = set(data) - {"name", "stages", "speed"}
        if unknown:
            raise ProfileError(
                f"{source}: unknown key(s) {', '.join(sorted(map(str, unknown)))}",
                hint=_FORMAT_HINT,
            )
        raw_stages = data.get("stages")
        if not isinstance(raw_stages, list) or not raw_stages:
            raise ProfileError(f"{source}: `stages` must be a non-empty list", hint=_FORMAT_HINT)
        stages = []
        for i, raw in enumerate(raw_stages, start=1):
            where = f"{source}: stage {i}"
            if not isinstance(raw, dict):
                raise ProfileError(f"{where}: expected a mapping, got {raw!r}", hint=_FORMAT_HINT)
            missing = {"duration_s", "users", "max_delay_s"} - set(raw)
            extra = set(raw) - {"duration_s", "users", "max_delay_s"}
            if missing or extra:
                parts = []
                if missing:
                    parts.append(f"missing {', '.join(sorted(missing))}")
                if extra:
                    parts.append(f"unknown {', '.join(sorted(map(str, extra)))}")
                raise ProfileError(f"{where}: {'; '.join(parts)}", hint=_FORMAT_HINT)
            try:
                stages.append(Stage(raw["duration_s"], raw["users"], raw["max_delay_s"]))
            except ValueError as exc:
                raise ProfileError(f"{where}: {exc}", hint=_FORMAT_HINT) from None
        name = data.get("name", source)
        speed = data.get("speed", 1.0)
        if not isinstance(speed, (int, float)) or isinstance(speed, bool) or not speed > 0:
            raise ProfileError(f"{source}: `speed` must be a number > 0, got {speed!r}")
        return cls(str(name), tuple(stages), float(speed))


_FORMAT_HINT = (
    "A profile file looks like:\n"
    "  name: my-profile\n"
    "  stages:\n"
    "    - {duration_s: 300, users: 20, max_delay_s: 100}"
)

# SPEC.md, "The evaluation protocol of the challenge": the course's load_test.sh.
CHALLENGE = Profile(
    "challenge",
    (
        Stage(5 * 60, 20, 100),
        Stage(2 * 60, 20, 50),
        Stage(2 * 60, 20, 10),
        Stage(1 * 60, 20, 3),
        Stage(5 * 60, 20, 1),
        Stage(5 * 60, 30, 1),
        Stage(1 * 60, 20, 3),
        Stage(2 * 60, 20, 60),
        Stage(7 * 60, 20, 80),
    ),
)

# Light, busy, light: enough to see the engine and the scores work, in 30 s of profile time.
SMOKE = Profile(
    "smoke",
    (
        Stage(10, 5, 2.0),
        Stage(10, 10, 0.5),
        Stage(10, 5, 2.0),
    ),
)

BUILTIN: dict[str, Profile] = {p.name: p for p in (CHALLENGE, SMOKE)}


def load_profile_file(path: Path) -> Profile:
    """Read a profile from a YAML or JSON file."""
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as exc:
        raise ProfileError(f"cannot read profile {path}: {exc.strerror or exc}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ProfileError(f"{path}: not valid YAML: {exc}", hint=_FORMAT_HINT) from None
    if isinstance(data, dict) and "name" not in data:
        data = {**data, "name": path.stem}
    return Profile.from_dict(data, source=str(path))


def load_profile(spec: str | Path) -> Profile:
    """A built-in profile by name (`challenge`, `smoke`), else a profile file by path."""
    if isinstance(spec, str) and spec.lower() in BUILTIN:
        return BUILTIN[spec.lower()]
    path = Path(spec).expanduser()
    if path.is_file():
        return load_profile_file(path)
    raise ProfileError(
        f"unknown profile {str(spec)!r}: not a built-in profile and no such file",
        hint=f"Built-in profiles: {', '.join(BUILTIN)}; or give the path of a YAML file.",
    )
