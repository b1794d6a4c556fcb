"""Progress lines for people and a one-line JSON summary for scripts.

Every command prints `[lakeml] <stage>: <message>` lines as it goes and ends with
the JSON summary as the last line of stdout, on success (`"ok": true`) and on failure
(`"ok": false`, the error, the stages completed and the one that failed).
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
        self.stages_completed: list[str] = []
        self.failed_stage: str | None = None
        # What the command exits with when it finishes without an error: 0, or a documented
        # outcome that is not an error (e.g. no champion, a monitoring check failed).
        self.exit_status = 0
        self._stream = stream or sys.stdout
        self._started = time.monotonic()

    def progress(self, stage: str, message: str) -> None:
        print(f"[lakeml] {stage}: {message}", file=self._stream, flush=True)

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        """Time a stage and print its start and end; remember it as completed, or as the
        stage that failed (the innermost one) when an exception leaves it."""
        self.progress(name, "started")
        t0 = time.monotonic()
        try:
            yield
        except BaseException:
            self.failed_stage = self.failed_stage or name
            self.progress(name, f"failed after {round(time.monotonic() - t0, 2)}s")
            raise
        seconds = round(time.monotonic() - t0, 2)
        self.summary.setdefault("stage_seconds", {})[name] = seconds
        self.stages_completed.append(name)
        self.progress(name, f"done in {seconds}s")

    def add(self, **values: Any) -> None:
        self.summary.update(values)

    def finish(self) -> dict[str, Any]:
        """Print the JSON summary line of a success (the last line of stdout) and return it."""
        self.summary.update(
            ok=True, exit_status=self.exit_status, stages_completed=self.stages_completed
        )
        return self._print()

    def fail(self, error: str, exit_status: int, log: str | None = None) -> dict[str, Any]:
        """Print the JSON summary line of a failure and return it: the one-line `error`, the
        exit status, the stages completed and the one that failed (None: outside a stage),
        the log file with the traceback, and the sections added before the failure."""
        self.summary.update(
            ok=False,
            error=error,
            exit_status=exit_status,
            stages_completed=self.stages_completed,
            failed_stage=self.failed_stage,
            log=log,
        )
        return self._print()

    def _print(self) -> dict[str, Any]:
        self.summary["seconds"] = round(time.monotonic() - self._started, 2)
        print(json.dumps(self.summary, default=str, sort_keys=True), file=self._stream, flush=True)
        return self.summary
