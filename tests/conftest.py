"""Shared fixtures: a throwaway PostgreSQL cluster and the demo stack under test.

Nothing here is mocked: the cluster is a real PostgreSQL 15 started from the Debian
binaries, and the stack is the real examples/stack compose project on the real engine.
A missing prerequisite fails loudly (run scripts/bootstrap.sh), it never skips.
"""
import os
import subprocess

import pytest

from support.pgcluster import PgCluster
from support.stack import TestStack


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
