"""pg_maintenance against a real throwaway PostgreSQL 15 (the pg_cluster fixture)."""
import uuid

import pytest

from support.runner import run_module

pytestmark = pytest.mark.pg

MODULE = "stackops.runbooks.pg_maintenance"


@pytest.fixture()
def db(pg_cluster):
    """A fresh database per test, with a bloated table, a small table and an awkwardly named one."""
    name = "maint_%s" % uuid.uuid4().hex[:8]
    pg_cluster.sql('CREATE DATABASE "%s"' % name)
    with pg_cluster.connect(name) as conn:
        # autovacuum off on the tables, so the bloat stays until the module removes it
        conn.execute("CREATE TABLE big (id int PRIMARY KEY, pad text) WITH (autovacuum_enabled = false)")
        conn.execute("INSERT INTO big SELECT g, repeat('x', 200) FROM generate_series(1, 20000) g")
        conn.execute("CREATE INDEX big_pad ON big (pad)")
        conn.execute("DELETE FROM big WHERE id % 5 <> 0")
        conn.execute("CREATE TABLE small (id int) WITH (autovacuum_enabled = false)")
        conn.execute("INSERT INTO small VALUES (1), (2)")
        conn.execute('CREATE TABLE "Weird ""Name""; drop" (id int)')
        conn.execute("ANALYZE small")
    yield name
    pg_cluster.sql('DROP DATABASE "%s" WITH (FORCE)' % name)


def failed(res):
    return bool(res["_run"].task_results(event_types=("runner_on_failed",)))


def params(pg_cluster, db, **extra):
    args = pg_cluster.params(login_db=db, **extra)
    args.pop("tools_bindir")  # pg_maintenance runs SQL only, no client tools
    return args


def sizes(pg_cluster, db, table="big"):
    return pg_cluster.sql("SELECT pg_total_relation_size(%s::regclass)", db, [table])[0][0]


def test_vacuum_full_refused_without_allow_exclusive_locks(pg_cluster, db):
    before = sizes(pg_cluster, db)
    res = run_module(MODULE, params(pg_cluster, db, operation="vacuum_full"))
    assert failed(res), res
    assert "allow_exclusive_locks" in res["msg"] and "ACCESS EXCLUSIVE" in res["msg"]
    assert sizes(pg_cluster, db) == before


def test_check_mode_lists_statements_and_changes_nothing(pg_cluster, db):
    before = sizes(pg_cluster, db)
    res = run_module(MODULE, params(pg_cluster, db, operation="vacuum_full", allow_exclusive_locks=True,
                                    bloat_threshold=50), check=True)
    assert not failed(res), res
    assert res["changed"] is True
    statements = [a["statement"] for a in res["actions"]]
    assert statements == ['VACUUM (FULL, ANALYZE) "public"."big"']
    assert all(a["ran"] is False for a in res["actions"])
    assert {s["table"] for s in res["skipped_tables"]} == {"small", 'Weird "Name"; drop'}
    assert sizes(pg_cluster, db) == before


def test_vacuum_full_over_threshold_reclaims_space(pg_cluster, db):
    before = sizes(pg_cluster, db)
    res = run_module(MODULE, params(pg_cluster, db, operation="vacuum_full", allow_exclusive_locks=True,
                                    bloat_threshold=50, bloat_method="stats"))
    assert not failed(res), res
    assert res["changed"] is True
    (action,) = res["actions"]
    assert action["table"] == "big" and action["ran"] is True and action["bloat_percent"] >= 79
    assert action["total_bytes_before"] == before
    assert action["total_bytes_after"] == sizes(pg_cluster, db)
    assert action["reclaimed_bytes"] > before / 2
    assert res["reclaimed_bytes"] == action["reclaimed_bytes"]
    assert isinstance(action["duration_seconds"], (int, float))
    # the rows that were not deleted are all still there
    assert pg_cluster.sql("SELECT count(*) FROM big", db)[0][0] == 4000


def test_vacuum_over_threshold_is_idempotent(pg_cluster, db):
    args = params(pg_cluster, db, operation="vacuum_analyze", bloat_threshold=20)
    first = run_module(MODULE, args)
    assert not failed(first), first
    assert first["changed"] is True and [a["table"] for a in first["actions"]] == ["big"]
    second = run_module(MODULE, args)
    assert not failed(second), second
    assert second["changed"] is False and second["actions"] == []


def test_pgstattuple_estimate_when_installed(pg_cluster, db):
    pg_cluster.sql("CREATE EXTENSION pgstattuple", db)
    res = run_module(MODULE, params(pg_cluster, db, operation="vacuum_full", allow_exclusive_locks=True,
                                    bloat_threshold=50, bloat_method="pgstattuple", tables=["big", "small"],
                                    min_table_bytes=65536), check=True)
    assert not failed(res), res
    # a one-page table is mostly free space to pgstattuple: min_table_bytes keeps it out
    (action,) = res["actions"]
    assert res["skipped_tables"][0]["table"] == "small" and "size" in res["skipped_tables"][0]["reason"]
    assert action["bloat_method"] == "pgstattuple" and action["bloat_percent"] >= 50


def test_reindex_concurrently_and_exclusive_refusal(pg_cluster, db):
    res = run_module(MODULE, params(pg_cluster, db, operation="reindex", tables=["public.big"]))
    assert not failed(res), res
    (action,) = res["actions"]
    assert action["statement"] == 'REINDEX TABLE CONCURRENTLY "public"."big"'
    assert action["exclusive_lock"] is False and action["index_bytes_after"] < action["index_bytes_before"]
    refused = run_module(MODULE, params(pg_cluster, db, operation="reindex", tables=["big"], concurrently=False))
    assert failed(refused) and "concurrently=true" in refused["msg"]


def test_identifiers_are_quoted(pg_cluster, db):
    res = run_module(MODULE, params(pg_cluster, db, operation="analyze", tables=['public."Weird ""Name""; drop"']))
    assert not failed(res), res
    assert res["actions"][0]["statement"] == 'ANALYZE "public"."Weird ""Name""; drop"'
    assert pg_cluster.sql("SELECT count(*) FROM pg_class WHERE relname = 'big'", db)[0][0] == 1


def test_missing_table_fails_before_any_work(pg_cluster, db):
    before = sizes(pg_cluster, db)
    res = run_module(MODULE, params(pg_cluster, db, operation="vacuum_full", allow_exclusive_locks=True,
                                    tables=["big", "no_such_table"]))
    assert failed(res), res
    assert "no_such_table not found in database %s" % db in res["msg"]
    assert res["actions"] == []
    assert sizes(pg_cluster, db) == before


def test_lock_timeout_never_waits_behind_a_long_transaction(pg_cluster, db):
    holder = pg_cluster.connect(db)
    holder.autocommit = False
    holder.execute("SELECT count(*) FROM big")  # ACCESS SHARE lock held until rollback
    try:
        res = run_module(MODULE, params(pg_cluster, db, operation="vacuum_full", allow_exclusive_locks=True,
                                        tables=["big"], lock_timeout="1s"), timeout=120)
    finally:
        holder.rollback()
        holder.close()
    assert failed(res), res
    assert "conflicting lock" in res["msg"] and "lock_timeout is 1s" in res["msg"]
    assert res["actions"][0]["ran"] is False and "lock timeout" in res["actions"][0]["error"]


def test_sizing_never_hangs_behind_an_exclusive_lock(pg_cluster, db):
    holder = pg_cluster.connect(db)
    holder.autocommit = False
    holder.execute("LOCK TABLE big IN ACCESS EXCLUSIVE MODE")  # e.g. a migration's ALTER TABLE in flight
    try:
        res = run_module(MODULE, params(pg_cluster, db, operation="vacuum_full", allow_exclusive_locks=True,
                                        lock_timeout="1s"), check=True, timeout=120)
    finally:
        holder.rollback()
        holder.close()
    assert failed(res), res
    assert "sizing the tables" in res["msg"] and "lock_timeout=1s" in res["msg"]


def test_deadline_in_the_past_skips_all_work(pg_cluster, db):
    res = run_module(MODULE, params(pg_cluster, db, operation="vacuum_analyze", deadline="2000-01-01T00:00:00Z"))
    assert not failed(res), res
    assert res["changed"] is False and res["deadline_reached"] is True and res["actions"] == []
    assert {s["table"] for s in res["skipped_tables"]} == {"big", "small", 'Weird "Name"; drop'}
    assert all("deadline" in s["reason"] for s in res["skipped_tables"])
