"""Fixtures for the CLI tests: the real `stackops` executable (support/cli.py) against the real test stack (the
session's `stack` fixture, tests/conftest.py)."""
import pytest

from support.cli import stackops


@pytest.fixture
def state_dir(tmp_path):
    """A fresh run-history/lock dir per test, so tests never see each other's runs."""
    path = tmp_path / "state"
    path.mkdir()
    return path


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
    completed = stackops("health", *STACK_CHECKS, "-i", stack.inventory, "--json", state_dir=state)
    return completed, state
