"""Disaster recovery from nothing on a shape stack (support/shapes.py), the way a user does it: an inventory written
by `stackops init` and never edited, and only the documented CLI (docs/restore.md, "Disaster recovery from nothing").

Shared by the test_dr_shapes*.py files, each of which runs a pair of shapes, so the pairs run on separate xdist
workers; within a file the stacks of the pair are started side by side.
"""
import json
import secrets
import shutil
import threading
from pathlib import Path

from .cli import procedure, stackops
from .ports import port
from .s3server import S3Server
from .shapes import SHAPES, ShapeStack


def start_shapes(names, root, first_port):
    """{name: ShapeStack} of the shapes ``names``, each seeded and healthy, started in threads side by side.
    Every stack gets two slot-0 ports from ``first_port`` on (database, app)."""
    stacks = {name: ShapeStack(SHAPES[name], root / name, port(first_port + 2 * index), port(first_port + 2 * index + 1),
                               "dr")
              for index, name in enumerate(names)}
    errors = {}

    def start(name):
        try:
            stacks[name].start()
        except Exception as exc:  # reported below, with every shape's failure
            errors[name] = exc

    threads = [threading.Thread(target=start, args=(name,)) for name in names]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        for stack in stacks.values():
            stack.down()
        raise AssertionError("shape stacks did not start: %s" % errors)
    return stacks


def write_inventory(stack, state_dir):
    """`stackops init -f <the prod file> --env-file <its env> -o <dir>`: the inventory every step uses, unedited."""
    inventory = stack.work / "inventory"
    done = stackops("init", *stack.compose_args(), "-o", inventory, state_dir=state_dir, cwd=stack.work)
    assert done.returncode == 0, "stackops init failed on shape %s: %s %s" % (stack.shape.name, done.stdout,
                                                                             done.stderr)
    return inventory


def remote_options(s3, state_dir, name):
    """(-e @file arguments, environment) that give the CLI an off-site S3 target for shape ``name``: the target in a
    vars file, its keys in the standard AWS variables (the CLI refuses secrets as extra vars)."""
    target = s3.target("dr-" + name)
    env = {"AWS_ACCESS_KEY_ID": target.pop("access_key"), "AWS_SECRET_ACCESS_KEY": target.pop("secret_key")}
    vars_file = Path(state_dir) / "offsite-vars.json"
    vars_file.write_text(json.dumps({"stackops_offsite_targets": [dict(target, name="dr-s3")]}))
    return ["-e", "@%s" % vars_file], env


def disaster_recovery(stack, state_dir, s3=None):
    """Backup, restore --replace, then the DR onto a fresh server without --replace, and a refused second DR.
    With ``s3`` (an S3Server) the backup also goes off-site, the local backup directory is lost with the server, and
    the DR restores with --from-remote. Returns what each step printed, for the docs' expected output."""
    name = stack.shape.name
    inventory = write_inventory(stack, state_dir)
    host = None
    offsite, env = remote_options(s3, state_dir, name) if s3 else ([], None)
    from_remote = ["--from-remote"] if s3 else []

    backup = procedure("backup", "--all-databases", *offsite, inventory=inventory, state_dir=state_dir, timeout=900,
                       env=env)
    (host, report), = backup["result"].items()
    assert report["status"] == "ok" and report["verified"] == [True] * len(report["databases"]), report
    if s3:
        (copy,) = report["offsite"]
        assert copy["group_id"] == report["group_id"] and sorted(copy["copied"]) == sorted(report["backups"]), copy
        assert s3.keys("dr-" + name), "nothing went off-site"
    assert {stack.shape.dbname, "reports"} <= set(report["databases"])
    before = stack.state()
    assert before["settings"]["search_path"] == "app, public", before

    # A bad change, undone with a single-database restore over the app's database (writers stopped and started).
    stack.psql("DELETE FROM app.items WHERE id <= 100")
    replaced = procedure("restore", "--replace", "--yes", inventory=inventory, state_dir=state_dir, timeout=900)
    assert replaced["result"][host]["mode"] == "replace" and replaced["result"][host]["health_ok"], replaced["result"]
    assert stack.state() == before, name

    # Disaster: the data is gone (with the off-site copy, the local backup directory too). `startup --database-only`
    # brings up a fresh server, holding only the image's empty databases, and nothing else (an app on an empty
    # database cannot be healthy yet).
    stack.down()
    if s3:
        shutil.rmtree(report["backup_dir"])
    db_only = procedure("startup", "--database-only", inventory=inventory, state_dir=state_dir, timeout=900)
    assert [tier["services"] for tier in db_only["result"][host]["tiers"]] == [[stack.service]], db_only["result"]
    running = stack.compose("ps", "--services", "--status", "running").stdout.split()
    assert running == [stack.service], running
    assert stack.databases() == sorted({"postgres", stack.shape.dbname}), stack.databases()
    recovered = procedure("restore", "--all-databases", "--yes", *(from_remote + offsite), inventory=inventory,
                          state_dir=state_dir, timeout=900, env=env)
    result = recovered["result"][host]
    assert result["status"] == "ok" and result["would_replace"] == [], result
    assert set(result["would_replace_empty"]) == {"postgres", stack.shape.dbname}, result
    assert stack.state() == before, name
    started = procedure("startup", inventory=inventory, state_dir=state_dir, timeout=900)
    assert started["exit_code"] == 0
    assert stack.app_health()["status"] == "ok", stack.app_health()
    health = procedure("health", inventory=inventory, state_dir=state_dir)
    assert health["result"][host]["counts"]["critical"] == 0, health["result"]

    # The server has content now: another DR is refused, in the CLI user's words, and changes nothing.
    refused = procedure("restore", "--all-databases", "--yes", *(from_remote + offsite), inventory=inventory,
                        state_dir=state_dir, ok=False, timeout=900, env=env)
    assert refused["exit_code"] != 0
    messages = " ".join([refused.get("error") or ""] + [item["message"] for item in refused["failed_tasks"]])
    assert "replaces databases that are not empty: " in messages and "add --replace --yes to go ahead" in messages, \
        messages
    assert "stackops_restore_replace" not in messages and "confirm=" not in messages, messages
    assert stack.state() == before, name
    return dict(backup=backup, replaced=replaced, recovered=recovered, started=started, health=health,
                refused=refused)


def pair_tests(pair, first_port, s3_port=None):
    """The module fixture and the test of a test_dr_shapes*.py file for the shapes ``pair`` (one file per pair, so
    the pairs run on separate workers): ``shapes, test_disaster_recovery_from_nothing = pair_tests(...)``. With
    ``s3_port`` (slot 0) the pair recovers from an off-site copy on a real S3 server there, the local backups lost."""
    import pytest

    @pytest.fixture(scope="module")
    def shapes(docker_engine, tmp_path_factory):
        stacks = start_shapes(pair, tmp_path_factory.mktemp("dr-shapes"), first_port)
        server = S3Server(port(s3_port), "s3-secret-" + secrets.token_hex(12)).start() if s3_port else None
        yield stacks, server
        if server:
            server.stop()
        for stack in stacks.values():
            stack.down()

    @pytest.mark.parametrize("name", pair)
    def test_disaster_recovery_from_nothing(shapes, name, tmp_path):
        stacks, server = shapes
        state_dir = tmp_path / "state"
        state_dir.mkdir()
        disaster_recovery(stacks[name], state_dir, s3=server)

    return shapes, test_disaster_recovery_from_nothing
