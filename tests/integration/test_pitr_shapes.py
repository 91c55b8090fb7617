"""Point-in-time recovery on stacks shaped unlike ours (tests/support/shapes.py), through `stackops` with an inventory
written by `stackops init` and never edited (docs/pitr.md).

Both shapes have a database image built by compose (no `image:` key), a custom PGDATA below the mount point and a
superuser other than `postgres`; `built-bind` keeps its data in a bind-mounted host directory (password by
environment, database `appdata`), `built-volume` in a named volume (password by a compose secret). Each goes through
`pitr enable`, a verified `backup --physical`, `restore --to-time T` undoing a DELETE without WHERE (exactly what was
committed before T comes back, the database's own settings too), and `restore --to-latest` (nothing committed is
lost). The second recovery starts from the same base backup as the first and crosses the first one's fork: the
recovered server is on a higher timeline than the base backup, and the archive holds that timeline from its first
segment. No new base backup is taken after a recovery (another test covers that), which keeps the file short.

A shape whose database port is not published is refused by `pitr enable` before anything changes, with the fix in
the message: a module-level check on the `named-unpublished` shape's compose project, which needs no running stack.
"""
import os
import subprocess

import pytest

from support.cli import procedure, stackops
from support.pitr import NO_CRON, assert_no_secret, clean_up, dump, labelled_volumes, result_of, scratch_containers
from support.ports import port
from support.runner import run_module
from support.shapes import SHAPES, ShapeStack

PORTS = {"built-bind": (56770, 56771), "built-volume": (56772, 56773), "named-unpublished": (56774, 56775)}
# Every recovery of the file replays from the one verified base backup; the recovered cluster's own is not needed.
EXTRA = NO_CRON + ("-e", "stackops_pitr_backup_after_restore=false")


@pytest.fixture(scope="module", params=["built-bind", "built-volume"])
def shaped(request, docker_engine, tmp_path_factory):
    name = request.param
    work = tmp_path_factory.mktemp("pitr-" + name)
    stack = ShapeStack(SHAPES[name], work / "project", *(port(number) for number in PORTS[name]), purpose="pitr")
    stack.inventory, stack.state_dir, stack.pitr_dir = work / "inventory", work / "state", work / "backups-pitr"
    live = stack.work / "pgroot"

    def teardown():
        clean_up(stack.project, stack.pitr_dir, bind_siblings=live if stack.shape.bind else None)
        stack.down()

    stack.write()
    teardown()
    stack.up(stack.service).seed()  # the database only: PITR touches nothing else
    init = stackops("init", "--project-dir", stack.work, *stack.compose_args(), "-o", stack.inventory,
                    "--backup-dir", work / "backups", state_dir=stack.state_dir, cwd=work)
    assert init.returncode == 0, "stackops init failed on shape %s: %s %s" % (name, init.stdout, init.stderr)
    yield stack
    if os.environ.get("STACKOPS_KEEP_STACK") != "1":
        teardown()


def run(stack, *args, ok=True):
    summary = procedure(*args, *EXTRA, inventory=stack.inventory, state_dir=stack.state_dir, ok=ok)
    return summary, result_of(summary, stack.project)


def timeline(stack):
    return int(stack.psql("SELECT timeline_id FROM pg_control_checkpoint()")[0][0])


def test_pitr_on_the_shape(shaped):
    stack = shaped
    summary, enabled = run(stack, "pitr", "enable", "--yes")
    assert enabled["receiver_alive"] is True, dump(enabled)
    secrets = [stack.password, (stack.pitr_dir / "pgpass").read_text().split(":")[-1].strip()]
    assert_no_secret(secrets, summary["_run"], stack.state_dir)

    summary, backup = run(stack, "backup", "--physical")
    assert backup["backup"]["verified"] is True, dump(backup)
    # The scratch check ran on the built image and connected as the shape's superuser, not as postgres.
    assert backup["verification"]["scratch"]["databases"] >= 4, dump(backup)
    base = backup["backup"]

    # Undo a DELETE without WHERE: rows committed before T come back, none after, the settings with them.
    stack.psql("INSERT INTO app.items (label) SELECT 'before T ' || g FROM generate_series(1, 25) g")
    at_target = stack.state()
    target = stack.psql("SELECT clock_timestamp()::text")[0][0]
    stack.psql("INSERT INTO app.items (label) VALUES ('after T')")
    stack.psql("DELETE FROM app.items")
    summary, undone = run(stack, "restore", "--to-time", target, "--yes")
    assert undone["swapped"] is True and undone["plan"]["backup"]["id"] == base["id"], dump(undone)
    assert stack.state() == at_target
    first_timeline = timeline(stack)
    assert first_timeline > base["timeline"], "the recovery did not promote onto a new timeline"
    durations = undone["durations"]
    assert set(durations) >= {"plan", "wal", "recover", "scratch_check", "swap", "health"}, durations

    # Everything committed on the new timeline, then the latest point: a second recovery from the same base
    # backup, through the first recovery's fork.
    stack.psql("INSERT INTO app.items (label) SELECT 'after the first recovery ' || g FROM generate_series(1, 25) g")
    latest = stack.state()
    summary, result = run(stack, "restore", "--to-latest", "--yes")
    assert result["swapped"] is True and result["plan"]["backup"]["id"] == base["id"], dump(result)
    assert stack.state() == latest, "a commit made before --to-latest was lost"
    assert timeline(stack) > first_timeline
    # The data from before each swap is kept, labelled or beside the bind mount, and nothing else is left.
    assert scratch_containers(stack.project) == []
    kept = [entry["previous_data"] for entry in (undone, result)]
    if stack.shape.bind:
        assert all(os.path.isdir(path) for path in kept), kept
        assert not (stack.work / "pgroot" / os.path.basename(stack.shape.data_dir) / "barman_wal").exists()
    else:
        assert labelled_volumes(stack.project) == set(kept)


def test_warm_standby_on_the_shape(shaped):
    """The warm standby (docs/pitr.md "Warm standby") on the shape: seeded beside a bind mount or a named volume, below
    a custom PGDATA, run on the image compose built and queried as the shape's superuser; `--to-latest` promotes it
    and loses nothing; `stackops_pitr_standby=false` takes it away again (container, storage, slot)."""
    stack = shaped
    on = ("-e", "stackops_pitr_standby=true")
    summary, enabled = run(stack, "pitr", "enable", "--yes", *on)
    assert any("seed the warm standby" in change for change in enabled["changes"]), dump(enabled)
    storage = enabled["standby"]["storage"]
    assert enabled["standby"]["kind"] == ("bind" if stack.shape.bind else "volume"), dump(enabled)
    stack.psql("INSERT INTO app.items (label) SELECT 'before the standby restore ' || g FROM generate_series(1, 25) g")
    latest = stack.state()
    summary, result = run(stack, "restore", "--to-latest", "--yes", *on)
    assert result["method"] == "standby" and result["swapped"] is True, dump(result)
    assert stack.state() == latest, "a commit made before --to-latest was lost"
    assert result["previous_data"] == storage  # the standby's storage now keeps the data from before
    summary, removed = run(stack, "pitr", "enable", "--yes", "-e", "stackops_pitr_standby=false")
    assert any("remove the warm standby container" in change for change in removed["changes"]), dump(removed)
    assert not removed["standby"]
    assert stack.psql("SELECT count(*) FROM pg_replication_slots WHERE slot_name = 'stackops_pitr_standby'") == [["0"]]
    # Removing the standby never touches the data a swap set aside in an earlier standby's storage.
    assert os.path.isdir(storage) if stack.shape.bind else storage in labelled_volumes(stack.project)


def test_unpublished_database_port_is_refused_before_anything_changes(docker_engine, tmp_path):
    """Barman's receiver runs on the host and needs a fixed address: `pitr enable` says how to publish the port."""
    stack = ShapeStack(SHAPES["named-unpublished"], tmp_path / "project", *(port(n) for n in PORTS["named-unpublished"]),
                       purpose="pitr")
    stack.write()
    pitr_dir = tmp_path / "pitr"
    result = run_module("stackops.runbooks.pg_pitr", {
        "pitr_dir": str(pitr_dir), "server_name": stack.project, "compose_service": stack.service,
        "project_dir": str(stack.work), "compose_files": [str(stack.compose_file)], "env_files": [str(stack.env_file)],
        "login_host": "127.0.0.1", "login_port": 1, "login_user": stack.shape.user, "login_db": stack.shape.dbname,
        "login_password": stack.password})
    assert result["_run"].task_results(event_types=("runner_on_failed",)), dump(result)
    message = result["msg"]
    assert "not published" in message and "127.0.0.1:5432:5432" in message and "-f docker-compose.pitr.yml" in message
    assert "nothing was changed" in message, message
    assert not pitr_dir.exists()  # no Barman configuration, no passfile, no state
    assert subprocess.run(["docker", "compose", "--project-directory", str(stack.work), *stack.compose_args(), "ps",
                           "-q"], capture_output=True, text=True).stdout.strip() == ""  # nothing was started
