"""Progress lines for people and a one-line JSON summary for scripts.

Every command prints `[lakeml] <stage>: <message>` lines as it goes and ends with
the JSON summary as the last line of stdout.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any


class Report:
    """Collects a command's summary while printing progress lines."""

    def __init__(self, command: str, stream: Any = None) -> None:
        self.command = command
        self.summary: dict[str, Any] = {"command": command}
        self._stream = stream or sys.stdout
        self._started = time.monotonic()

    def progress(self, stage: str, message: str) -> None:
        print(f"[lakeml] {stage}: {message}", file=self._stream, flush=True)

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        """Time a stage and print its start and end."""
        self.progress(name, "started")
        t0 = time.monotonic()
        yield
        seconds = round(time.monotonic() - t0, 2)
        self.summary.setdefault("stage_seconds", {})[name] = seconds
        self.progress(name, f"done in {seconds}s")

    def add(self, **values: Any) -> None:
        self.summary.update(values)

    def finish(self) -> dict[str, Any]:
        """Print the JSON summary line (the last line of stdout) and return it."""
        self.summary["seconds"] = round(time.monotonic() - self._started, 2)
        print(json.dumps(self.summary, default=str, sort_keys=True), file=self._stream, flush=True)
        return self.summary
