"""Fixtures for the CLI tests: the real `stackops` executable against the real test stack."""
import os
import subprocess
import sys
from pathlib import Path

import pytest

from support.ports import project
from support.runner import OUTPUT, REPO
from support.stack import TestStack

STACKOPS = Path(sys.executable).parent / "stackops"


@pytest.fixture(scope="session")
def stack(docker_engine):
    # The project is passed explicitly so env file and inventory are named after it
    # (several sessions may each run their own isolated stack).
    test_stack = TestStack(project=os.environ.get("STACKOPS_TEST_PROJECT", project("stackops-test")))
    test_stack.write_config()
    if os.environ.get("STACKOPS_KEEP_STACK") != "1":
        # Start from a fresh stack: under xdist an earlier test file on this worker may have left the
        # same project behind in any state (an API it broke on purpose, a scaled service).
        test_stack.down()
    test_stack.up()
    yield test_stack
    if os.environ.get("STACKOPS_KEEP_STACK") != "1":
        test_stack.down()


@pytest.fixture
def state_dir(tmp_path):
    """A fresh run-history/lock dir per test, so tests never see each other's runs."""
    path = tmp_path / "state"
    path.mkdir()
    return path


def cli_env(state_dir, **extra):
    env = dict(os.environ)
    env.update({"STACKOPS_STATE_DIR": str(state_dir), "COLUMNS": "160", "NO_COLOR": "1"})
    env.pop("STACKOPS_COLLECTION_DIR", None)
    env.update({k: str(v) for k, v in extra.items()})
    return env


def run_cli(args, state_dir, timeout=600, input_text=None, **env):
    """Run the installed stackops executable as a subprocess (stdin not a terminal)."""
    if not STACKOPS.exists():
        pytest.fail("%s missing: install the package (pip install -e .)" % STACKOPS)
    return subprocess.run([str(STACKOPS)] + [str(a) for a in args], capture_output=True, text=True,
                          timeout=timeout, env=cli_env(state_dir, **env), input=input_text if input_text else "",
                          cwd=str(REPO))


# Host load/disk belong to the shared test machine, not to the stack under test: leave them out.
STACK_CHECKS = ["-e", '{"stackops_health_checks": ["compose", "http", "postgres"]}']
# For tests about the CLI's own behaviour (progress, lock, exit codes, check mode): one real, fast check group.
FAST_CHECKS = ["-e", '{"stackops_health_checks": ["compose"]}']


@pytest.fixture(scope="session")
def health_json_run(stack, tmp_path_factory):
    """One real `stackops health --json` over the stack's check groups, shared by the tests that only read it.

    Returns (completed process, its own state dir). Tests must not change that state dir's history
    (they may add files inside the run's directory, such as its report).
    """
    state = tmp_path_factory.mktemp("health-json") / "state"
    state.mkdir()
    completed = run_cli(["health", *STACK_CHECKS, "-i", stack.inventory, "--json"], state)
    return completed, state
