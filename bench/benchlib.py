"""What the benches share: run a lakeml command in-process and read its JSON summary."""

from __future__ import annotations

import contextlib
import io
import json
import sys


def run_lakeml(argv: list[str]) -> dict:
    """`lakeml <argv>` in this process (its SparkSession, if one runs, is reused); the
    summary it printed last; exits with the output's tail when the command fails."""
    from lakeml.cli import main

    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        status = main(argv)
    if status != 0:
        sys.exit(f"lakeml {argv[0]} failed ({status}):\n{out.getvalue()[-2000:]}")
    return json.loads(out.getvalue().strip().splitlines()[-1])
