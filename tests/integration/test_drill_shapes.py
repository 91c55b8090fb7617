"""The drill's override on every shape of stack (support/shapes.py), read back by the real compose: a built or named
image, a named volume or a bind-mounted data directory, the image's PGDATA or a custom one, a published or an
unpublished port. Compose must accept the override, and the model it resolves must give the database a fresh volume
on the mount holding its data, publish nothing and keep other bind mounts read-only. Nothing is started: the drills
that start containers run in test_drill.py and test_second_stack.py."""
import json
import subprocess

import pytest
import yaml

from ansible_collections.stackops.runbooks.plugins.module_utils.drill import (
    DATA_VOLUME, database_pgdata, drill_project, override_model, render_override)
from support.shapes import SHAPES, ShapeStack


@pytest.mark.parametrize("name", sorted(SHAPES))
def test_compose_accepts_the_override_of_every_shape(name, docker_engine, tmp_path):
    stack = ShapeStack(SHAPES[name], tmp_path / name, 1, 2, "drill").write()
    base = ["docker", "compose", "--project-directory", str(stack.work)] + stack.compose_args()
    live = json.loads(subprocess.run(base + ["-p", stack.project, "config", "--format", "json"], capture_output=True,
                                     text=True, check=True).stdout)
    model, info = override_model(live, stack.project, stack.service, {"app": "sha256:" + "0" * 64}, {})
    override = tmp_path / "drill-override.yml"
    override.write_text(render_override(model))
    drill = drill_project(stack.project)
    resolved = subprocess.run(base + ["-f", str(override), "-p", drill, "config", "--format", "json"],
                              capture_output=True, text=True)
    assert resolved.returncode == 0, resolved.stderr
    config = json.loads(resolved.stdout)
    db = config["services"][stack.service]
    assert info["pgdata"] == database_pgdata(db) == SHAPES[name].data_dir
    data = [(mount["type"], mount["source"]) for mount in db["volumes"] if mount["target"] == SHAPES[name].mount_target]
    assert data == [("volume", DATA_VOLUME)], db["volumes"]
    assert config["volumes"][DATA_VOLUME]["name"] == "%s_%s" % (drill, DATA_VOLUME)
    assert all(not spec.get("ports") for spec in config["services"].values()), yaml.safe_dump(config["services"])
    app = config["services"]["app"]
    assert app["image"] == "sha256:" + "0" * 64 and app["pull_policy"] == "never"
    assert all(mount.get("read_only") for mount in app["volumes"] if mount["type"] == "bind"), app["volumes"]
    assert config["networks"]["default"]["name"] == "%s_default" % drill
