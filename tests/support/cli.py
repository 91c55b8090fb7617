"""The one way tests run the `stackops` command: the installed executable, as a subprocess with no terminal."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from .runner import REPO

STACKOPS = Path(sys.executable).parent / "stackops"


def cli_env(state_dir, **extra):
    env = dict(os.environ)
    env.update({"STACKOPS_STATE_DIR": str(state_dir), "COLUMNS": "160", "NO_COLOR": "1"})
    env.pop("STACKOPS_COLLECTION_DIR", None)
    env.update({key: str(value) for key, value in extra.items()})
    return env


def stackops(*args, state_dir, cwd=None, timeout=600, input_text=None, env=None):
    """Run ``stackops ARGS`` with its run history in ``state_dir``; the completed process."""
    if not STACKOPS.exists():
        pytest.fail("%s missing: install the package (pip install -e .)" % STACKOPS)
    return subprocess.run([str(STACKOPS)] + [str(arg) for arg in args], capture_output=True, text=True,
                          timeout=timeout, env=cli_env(state_dir, **(env or {})), cwd=str(cwd or REPO),
                          input=input_text or "")


def procedure(*args, inventory, state_dir, ok=True, timeout=600, env=None, cwd=None):
    """``stackops ARGS -i INVENTORY --json``: its summary document, with the completed process under ``_run``.

    With ``ok`` the run must succeed; the failure message carries the error and the failed tasks."""
    completed = stackops(*args, "-i", inventory, "--json", state_dir=state_dir, timeout=timeout, env=env, cwd=cwd)
    try:
        summary = json.loads(completed.stdout)
    except ValueError:
        pytest.fail("stackops %s printed no JSON (rc %s): %s %s" % (
            " ".join(map(str, args)), completed.returncode, completed.stdout[-2000:], completed.stderr[-2000:]))
    if ok:
        assert completed.returncode == 0, "stackops %s failed (rc %s): %s; failed tasks: %s" % (
            " ".join(map(str, args)), completed.returncode, summary.get("error"),
            json.dumps(summary.get("failed_tasks"))[:3000])
    summary["_run"] = completed
    return summary
