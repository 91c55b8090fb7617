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

import pytest
from support.pitr import NO_CRON, Writer, assert_no_secret, clean_up, result_of, write_ids
from support.ports import port, project
from support.shop import ShopStack

PROJECT = project("h-pitr-shop")
# No cron entry on the test machine; the recovered cluster's fresh base backup is taken but not trial-started.
EXTRA = [*NO_CRON, "-e", "stackops_pitr_verify_after_restore=false"]


@pytest.fixture(scope="module")
def shop(docker_engine, tmp_path_factory):
    work = tmp_path_factory.mktemp("pitr-shop")
    stack = ShopStack(work, PROJECT, port(56630), port(56631))
    stack.pitr_dir = work / "backups-pitr"  # stackops_pitr_dir's default: <stackops_backup_dir>-pitr
    clean_up(PROJECT, stack.pitr_dir)
    stack.up("db")  # only the database: PITR touches nothing else
    written = stack.stackops(*stack.init_args())
    if written.returncode != 0:
        pytest.fail("stackops init failed: %s %s" % (written.stdout, written.stderr))
    yield stack
    if os.environ.get("STACKOPS_KEEP_STACK") != "1":
        stack.down()
        clean_up(PROJECT, stack.pitr_dir)
        shutil.rmtree(work, ignore_errors=True)


def stackops(stack, *args):
    summary = stack.procedure(*args, *EXTRA)
    return summary, result_of(summary, PROJECT)


def slots(stack):
    with stack.connect() as conn:
        return conn.execute("SELECT count(*) FROM pg_replication_slots").fetchone()[0]


def writer_of(stack):
    return Writer(stack.connect, "INSERT INTO writes DEFAULT VALUES RETURNING id")


def test_enable_on_the_stock_image_stack(shop):
    summary, result = stackops(shop, "pitr", "enable", "--yes")
    assert result["receiver_alive"] is True, result
    assert any("replication slot" in change for change in result["changes"]), result
    assert oct(os.stat(shop.pitr_dir / "pgpass").st_mode & 0o777) == "0o600"
    password = (shop.pitr_dir / "pgpass").read_text().split(":")[-1].strip()
    assert_no_secret([password, shop.password], summary["_run"], shop.state)
    with shop.connect() as conn:
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
    table = shop.stackops("backups", "-i", shop.inventory, *EXTRA)
    assert table.returncode == 0, table.stderr
    assert "kind" in table.stdout and "physical" in table.stdout and result["backup_id"] in table.stdout, table.stdout


def test_undo_a_delete_without_where(shop):
    writer = writer_of(shop)
    writer.start()
    writer.wait_for_commits(100)
    with writer.gate:  # no commit is in flight at T: every row is clearly before or after it
        before = list(writer.committed)
        with shop.connect() as conn:
            target = conn.execute("SELECT clock_timestamp()::text").fetchone()[0]
    writer.wait_for_commits(50)  # rows committed after T, which must not come back
    with shop.connect() as conn:
        conn.execute("DELETE FROM writes")
    writer.halt()
    assert writer.error is None and len(writer.committed) > len(before)
    dummy, result = stackops(shop, "restore", "--to-time", target, "--yes")
    assert result["swapped"] is True and result["plan"]["inside_window"] is True, result
    assert write_ids(shop) == list(range(1, 501)) + before  # every row committed before T, none after
    with shop.connect() as conn:
        assert conn.execute("SELECT pg_encoding_to_char(encoding) FROM pg_database WHERE datname = 'legacy'").fetchone()[0] == "SQL_ASCII"


def test_rpo_lose_the_volume_while_writing(shop):
    writer = writer_of(shop)
    writer.start()
    writer.wait_for_commits(200)
    shop.compose("kill", "db")
    writer.halt(killed=True)
    shop.compose("rm", "-f", "db")
    subprocess.run(["docker", "volume", "rm", "%s_dbdata" % PROJECT], check=True, capture_output=True)
    committed = writer.committed
    assert committed, "the writer committed nothing before the kill"
    # The last recovery of the file: no base backup of its new timeline is needed (the undo test covers that path).
    dummy, result = stackops(shop, "restore", "--to-latest", "--yes", "-e", "stackops_pitr_backup_after_restore=false")
    assert result["swapped"] is True, result
    recovered = [i for i in write_ids(shop) if i >= committed[0]]
    assert recovered == committed[:len(recovered)], "recovery left a gap in the committed rows"
    lost = len(committed) - len(recovered)
    print("RPO (shop): %d of %d committed rows lost" % (lost, len(committed)))
    assert len(recovered) > 0


def test_disable_leaves_no_slot(shop):
    dummy, result = stackops(shop, "pitr", "disable")
    assert any("drop replication slot" in change for change in result["changes"]), result
    assert slots(shop) == 0
    assert not (shop.pitr_dir / "pgpass").exists()
