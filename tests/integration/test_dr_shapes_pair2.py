"""Disaster recovery from nothing on shapes unlike ours (built-volume, named-bind-env): init, backup --all-databases, restore
--replace, then down -v and restore --all-databases --yes WITHOUT --replace, the state and the app back as they were,
and a second DR onto content refused naming --replace --yes (issue 20, failed 2 and 3; support/dr.py)."""
import pytest

from support.dr import disaster_recovery, start_shapes

PAIR = ("built-volume", "named-bind-env")


@pytest.fixture(scope="module")
def shapes(docker_engine, tmp_path_factory):
    stacks = start_shapes(PAIR, tmp_path_factory.mktemp("dr-shapes"), 56875)
    yield stacks
    for stack in stacks.values():
        stack.down()


@pytest.mark.parametrize("name", PAIR)
def test_disaster_recovery_from_nothing(shapes, name, tmp_path):
    state_dir = tmp_path / "state"
    state_dir.mkdir()
    disaster_recovery(shapes[name], state_dir)
