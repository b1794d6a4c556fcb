"""Named points where the fault-injection suite kills a run, to prove that a crash there
loses nothing and that a rerun yields exactly a clean run's tables.

A test starts `lakeml` in its own process group with `LAKEML_FAILPOINTS=name[,name...]`.
When the run reaches an armed point it prints `[lakeml] failpoint: <name>` and either waits
there (the test kills the group, Python and its driver JVM, with SIGKILL: a crash exactly
at that point) or goes on (`wait=False`: the kill lands while the next step, e.g. a Delta
write, is running). Unarmed, which is always the case outside those tests, a point costs
an environment lookup.
"""

from __future__ import annotations

import os
import sys
import time

ENV = "LAKEML_FAILPOINTS"
RELEASE_ENV = "LAKEML_FAILPOINTS_RELEASE"
MARKER = "[lakeml] failpoint: "


def reach(name: str, wait: bool = True) -> None:
    armed = os.environ.get(ENV)
    if not armed or name not in armed.split(","):
        return
    print(f"{MARKER}{name}", file=sys.stdout, flush=True)
    while wait:
        time.sleep(60)
    release = os.environ.get(RELEASE_ENV)
    while release and not os.path.exists(release):
        time.sleep(0.02)
