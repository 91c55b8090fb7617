"""Shared fixtures: a throwaway PostgreSQL cluster and the demo stack under test.

Nothing here is mocked: the cluster is a real PostgreSQL 15 started from the Debian
binaries, and the stack is the real examples/stack compose project on the real engine.
A missing prerequisite fails loudly (run scripts/bootstrap.sh), it never skips.
"""
import os
import subprocess

import pytest

from support.pgcluster import PgCluster
from support.ports import port, project
from support.stack import TestStack

# Under pytest-xdist every worker is its own session with its own copy of the demo stack, so each
# gets its own compose project name and host ports (set before any fixture reads them).
# A second checkout on the same machine moves all of it again with STACKOPS_TEST_SLOT (support/ports.py).
_WORKER = os.environ.get("PYTEST_XDIST_WORKER", "")
if _WORKER.startswith("gw"):
    _N = int(_WORKER[2:])
    os.environ["STACKOPS_TEST_PROJECT"] = "%s-%s" % (os.environ.get("STACKOPS_TEST_PROJECT", project("stackops-test")), _WORKER)
    os.environ["STACKOPS_TEST_PG_PORT"] = str(int(os.environ.get("STACKOPS_TEST_PG_PORT", port(55442))) + 10 * (_N + 1))
    os.environ["STACKOPS_TEST_FRONTEND_PORT"] = str(int(os.environ.get("STACKOPS_TEST_FRONTEND_PORT", port(58090))) + 10 * (_N + 1))


@pytest.fixture(scope="session")
def pg_cluster():
    cluster = PgCluster().start()
    yield cluster
    cluster.stop()


@pytest.fixture(scope="session")
def docker_engine():
    probe = subprocess.run(["docker", "info", "--format", "{{.ServerVersion}}"], capture_output=True, text=True)
    if probe.returncode != 0:
        pytest.fail("no Docker engine answers (%s): run scripts/bootstrap.sh" % probe.stderr.strip())
    return probe.stdout.strip()


@pytest.fixture(scope="session")
def stack(docker_engine):
    test_stack = TestStack()
    test_stack.write_config()
    if os.environ.get("STACKOPS_KEEP_STACK") != "1":
        # Start from empty volumes: a data volume left by another checkout was initialised
        # with that checkout's generated password and would refuse this one's.
        test_stack.down()
    test_stack.up()
    yield test_stack
    if os.environ.get("STACKOPS_KEEP_STACK") != "1":
        test_stack.down()


# The files that run longest (minutes each: whole stacks, recoveries, real S3/SSH servers) go first, so under
# `pytest -n N --dist loadfile` they start at once on separate workers and the short files fill in around them,
# instead of one of them starting last and running alone (longest-first scheduling). Only the order changes.
LONG_FILES = (
    "test_all_databases.py", "test_pitr_faults.py", "test_offsite_pitr.py", "test_offsite_ssh.py",
    "test_pitr.py", "test_ssh.py", "test_offsite_groups.py", "test_pitr_shop.py", "test_offsite.py",
    "test_backup_encrypt_local.py", "test_second_stack.py", "test_dr_shapes.py", "test_dr_shapes_pair2.py",
)


def pytest_collection_modifyitems(session, config, items):
    rank = {name: position for position, name in enumerate(LONG_FILES)}
    items.sort(key=lambda item: rank.get(item.path.name, len(LONG_FILES)))
