"""Point-in-time recovery on the stock-image second stack (examples/shop), all through `stackops` (docs/pitr.md).

The shop is shaped unlike the demo: service `db`, -f docker-compose.prod.yml -f docker-compose.local.yml, two env
files, the official postgres image's env contract (password from a compose secret file), databases shop and legacy
(SQL_ASCII), a fixed backend port. Its inventory is written by `stackops init` and never edited. One copy (project
h-pitr-shop, ports 56630/56631) goes through enable, a verified physical base backup listed beside the logical
ones, undoing a DELETE without WHERE, losing the data volume while a writer runs (recover to latest, report the
rows lost), and disable. tests/integration/test_pitr.py covers the demo stack's other cases.
"""
import os
import shutil
import subprocess

import psycopg
import pytest
from support.cli import procedure, stackops as run_stackops
from support.pitr import NO_CRON, Writer, assert_no_secret, clean_up, result_of
from support.ports import port, project
from support.runner import REPO

SHOP = REPO / "examples" / "shop"
PROJECT = project("h-pitr-shop")
DB_PORT, BACKEND_PORT = port(56630), port(56631)
FILES = [SHOP / "docker-compose.prod.yml", SHOP / "docker-compose.local.yml"]
# No cron entry on the test machine; the recovered cluster's fresh base backup is taken but not trial-started.
EXTRA = [*NO_CRON, "-e", "stackops_pitr_verify_after_restore=false"]
RUN = {}


def _base_image():
    env = REPO / "examples" / "stack" / ".env"
    for line in (env.read_text().splitlines() if env.exists() else []):
        if line.startswith("STACKOPS_BASE_IMAGE="):
            return line.split("=", 1)[1]
    return "debian:bookworm-slim"


@pytest.fixture(scope="module")
def shop(docker_engine, tmp_path_factory):
    if not (SHOP / "secrets" / "db_password").is_file():
        pytest.fail("examples/shop/secrets/db_password is missing: run scripts/bootstrap.sh")
    work = tmp_path_factory.mktemp("pitr-shop")
    env_file = work / "local.env"
    env_file.write_text("SHOP_PROJECT=%s\nSHOP_DB_PORT=%d\nSHOP_BACKEND_PORT=%d\nSTACKOPS_BASE_IMAGE=%s\n" % (
        PROJECT, DB_PORT, BACKEND_PORT, _base_image()))
    ctx = dict(work=work, env_files=[SHOP / "shop.env", env_file], inventory=work / "inventory", state=work / "state",
               password=(SHOP / "secrets" / "db_password").read_text().strip(), pitr_dir=work / "backups-pitr")
    ctx["state"].mkdir()

    def compose(*args, check=True):
        argv = ["docker", "compose", "--project-directory", str(SHOP)]
        for path in FILES:
            argv += ["-f", str(path)]
        for path in ctx["env_files"]:
            argv += ["--env-file", str(path)]
        return subprocess.run(argv + list(args), capture_output=True, text=True, timeout=300, check=check)

    ctx["compose"] = compose
    compose("down", "-v", "--remove-orphans", check=False)
    clean_up(PROJECT, ctx["pitr_dir"])
    # Only the database: PITR touches nothing else, and the writers' own traffic is not what is measured here.
    started = compose("up", "-d", "--wait", "db", check=False)
    if started.returncode != 0:
        pytest.fail("the shop database did not start (run scripts/bootstrap.sh to build its images): %s" % started.stderr)
    init = ["init", "--project-dir", SHOP]
    for path in FILES:
        init += ["-f", path]
    for path in ctx["env_files"]:
        init += ["--env-file", path]
    written = run(ctx, *init, "-o", ctx["inventory"], "--backup-dir", work / "backups")
    if written.returncode != 0:
        pytest.fail("stackops init failed: %s %s" % (written.stdout, written.stderr))
    yield ctx
    if os.environ.get("STACKOPS_KEEP_STACK") != "1":
        compose("down", "-v", "--remove-orphans", check=False)
        clean_up(PROJECT, ctx["pitr_dir"])
        shutil.rmtree(work, ignore_errors=True)


def run(ctx, *args):
    return run_stackops(*args, state_dir=ctx["state"], cwd=ctx["work"])


def stackops(ctx, *args):
    summary = procedure(*args, *EXTRA, inventory=ctx["inventory"], state_dir=ctx["state"], cwd=ctx["work"])
    return summary, result_of(summary, PROJECT)


def connect(ctx, dbname="shop"):
    return psycopg.connect(host="127.0.0.1", port=DB_PORT, user="shop", password=ctx["password"], dbname=dbname,
                           autocommit=True, connect_timeout=5)


def ids(ctx):
    with connect(ctx) as conn:
        return [row[0] for row in conn.execute("SELECT id FROM writes ORDER BY id")]


def slots(ctx):
    with connect(ctx) as conn:
        return conn.execute("SELECT count(*) FROM pg_replication_slots").fetchone()[0]


def writer_of(ctx):
    return Writer(lambda: connect(ctx), "INSERT INTO writes DEFAULT VALUES RETURNING id")


def test_enable_on_the_stock_image_stack(shop):
    summary, result = stackops(shop, "pitr", "enable", "--yes")
    assert result["receiver_alive"] is True, result
    assert any("replication slot" in change for change in result["changes"]), result
    assert oct(os.stat(shop["pitr_dir"] / "pgpass").st_mode & 0o777) == "0o600"
    password = (shop["pitr_dir"] / "pgpass").read_text().split(":")[-1].strip()
    assert_no_secret([password, shop["password"]], summary["_run"], shop["state"])
    with connect(shop) as conn:
        conn.execute("CREATE TABLE writes (id bigserial PRIMARY KEY, at timestamptz NOT NULL DEFAULT clock_timestamp())")
        conn.execute("INSERT INTO writes SELECT FROM generate_series(1, 500)")


def test_physical_backup_listed_beside_the_logical_ones(shop):
    dummy, logical = stackops(shop, "backup")
    dummy, result = stackops(shop, "backup", "--physical")
    assert result["kind"] == "physical" and result["backup"]["verified"] is True, result
    # The scratch start saw the whole cluster: postgres, template0/1, shop and legacy.
    assert result["verification"]["scratch"]["databases"] >= 5, result
    dummy, listing = stackops(shop, "backups")
    kinds = dict((item["id"], item.get("kind")) for item in listing["backups"])
    assert kinds.get(result["backup_id"]) == "physical" and kinds.get(logical["backup_id"]) == "logical", listing
    # The RPO is judged on the newest verified set of either kind: here the base backup, taken last.
    assert listing["rpo_kind"] == "physical" and listing["rpo_seconds"] is not None, listing
    table = run(shop, "backups", "-i", shop["inventory"], *EXTRA)
    assert table.returncode == 0, table.stderr
    assert "kind" in table.stdout and "physical" in table.stdout and result["backup_id"] in table.stdout, table.stdout


def test_undo_a_delete_without_where(shop):
    writer = writer_of(shop)
    writer.start()
    writer.wait_for_commits(100)
    with writer.gate:  # no commit is in flight at T: every row is clearly before or after it
        before = list(writer.committed)
        with connect(shop) as conn:
            target = conn.execute("SELECT clock_timestamp()::text").fetchone()[0]
    writer.wait_for_commits(50)  # rows committed after T, which must not come back
    with connect(shop) as conn:
        conn.execute("DELETE FROM writes")
    writer.halt()
    assert writer.error is None and len(writer.committed) > len(before)
    dummy, result = stackops(shop, "restore", "--to-time", target, "--yes")
    assert result["swapped"] is True and result["plan"]["inside_window"] is True, result
    assert ids(shop) == list(range(1, 501)) + before  # every row committed before T, none after
    with connect(shop) as conn:
        assert conn.execute("SELECT pg_encoding_to_char(encoding) FROM pg_database WHERE datname = 'legacy'").fetchone()[0] == "SQL_ASCII"


def test_rpo_lose_the_volume_while_writing(shop):
    writer = writer_of(shop)
    writer.start()
    writer.wait_for_commits(200)
    shop["compose"]("kill", "db")
    writer.halt(killed=True)
    shop["compose"]("rm", "-f", "db")
    subprocess.run(["docker", "volume", "rm", "%s_dbdata" % PROJECT], check=True, capture_output=True)
    committed = writer.committed
    assert committed, "the writer committed nothing before the kill"
    # The last recovery of the file: no base backup of its new timeline is needed (the undo test covers that path).
    dummy, result = stackops(shop, "restore", "--to-latest", "--yes", "-e", "stackops_pitr_backup_after_restore=false")
    assert result["swapped"] is True, result
    recovered = [i for i in ids(shop) if i >= committed[0]]
    assert recovered == committed[:len(recovered)], "recovery left a gap in the committed rows"
    lost = len(committed) - len(recovered)
    print("RPO (shop): %d of %d committed rows lost" % (lost, len(committed)))
    assert len(recovered) > 0


def test_disable_leaves_no_slot(shop):
    dummy, result = stackops(shop, "pitr", "disable")
    assert any("drop replication slot" in change for change in result["changes"]), result
    assert slots(shop) == 0
    assert not (shop["pitr_dir"] / "pgpass").exists()
