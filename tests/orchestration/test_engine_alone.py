"""The engine stands alone: tests/engine_alone runs in a process of its own with only
orchestration installed (no records, no workitems) and a fake step kind."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_the_engine_alone_suite_passes() -> None:
    env = {**os.environ, "ENGINE_ALONE": "1", "DJANGO_SETTINGS_MODULE": "tests.engine_alone.settings"}
    env.pop("PYTEST_XDIST_WORKER", None)
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "tests/engine_alone",
            "-q",
            "-p",
            "no:randomly",
            "-p",
            "no:xdist",
            "--ds",
            "tests.engine_alone.settings",
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    assert re.search(r"\b4 passed\b", done.stdout), done.stdout[-2000:]
