"""The state directory: what each step recorded for the next. Files are 0600; no secrets."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any


class StateDir:
    """A directory of small JSON documents, one per step, written atomically with mode 0600."""

    def __init__(self, root: Path):
        self.root = Path(root)

    def ensure(self) -> Path:
        self.root.mkdir(parents=True, exist_ok=True, mode=0o700)
        return self.root

    def path(self, *parts: str) -> Path:
        return self.root.joinpath(*parts)

    def read(self, name: str) -> dict[str, Any] | None:
        p = self.path(f"{name}.json")
        if not p.exists():
            return None
        try:
            data = json.loads(p.read_text())
        except ValueError as exc:  # edited by hand, or cut short outside ggctl's atomic writes
            from ggctl.errors import GgctlError

            raise GgctlError(
                f"{p} (ggctl's record of `{name}`) is not valid JSON: {exc}",
                hint=f"move it away (mv {p} {p}.bad) and run the step that writes it again",
            ) from exc
        return data

    def write(self, name: str, data: dict[str, Any]) -> Path:
        self.ensure()
        p = self.path(f"{name}.json")
        tmp = p.with_suffix(".json.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            json.dump(data, fh, indent=2, sort_keys=True, default=str)
            fh.write("\n")
        os.replace(tmp, p)
        return p

    def run_dir(self, kind: str, stamp: str) -> Path:
        """A fresh directory for one run's outputs (CSV, JSON, plots)."""
        d = self.path("runs", f"{stamp}-{kind}")
        d.mkdir(parents=True, exist_ok=True, mode=0o700)
        return d
