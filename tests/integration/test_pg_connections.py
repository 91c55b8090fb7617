"""pg_connections against a real throwaway PostgreSQL 15: real sessions, really terminated."""
import uuid

import pytest

from support.runner import run_module
from support.wait import sessions_older_than

pytestmark = pytest.mark.pg

MODULE = "stackops.runbooks.pg_connections"


def failed(res):
    return bool(res["_run"].task_results(event_types=("runner_on_failed",)))


def params(pg_cluster, **extra):
    args = pg_cluster.params(**extra)
    args.pop("tools_bindir")
    return args


@pytest.fixture()
def sessions(pg_cluster):
    """Sessions with distinct application names: two idle, one idle in a transaction, one of another app."""
    tag = uuid.uuid4().hex[:6]
    apps = {"idle": "victim-idle-" + tag, "xact": "victim-xact-" + tag, "keep": "keeper-" + tag}
    conns = {
        "idle1": pg_cluster.connect(application_name=apps["idle"]),
        "idle2": pg_cluster.connect(application_name=apps["idle"]),
        "xact": pg_cluster.connect(application_name=apps["xact"]),
        "keep": pg_cluster.connect(application_name=apps["keep"]),
    }
    conns["xact"].autocommit = False
    conns["xact"].execute("SELECT txid_current()")  # open transaction, then idle in it
    pids = {name: conn.info.backend_pid for name, conn in conns.items()}
    with pg_cluster.connect() as conn:  # so min_state_age=1 matches, by the server's own clock
        sessions_older_than(conn, pids.values(), 1.2)
    yield apps, pids
    for conn in conns.values():
        try:
            conn.close()
        except Exception:  # noqa: BLE001 - terminated sessions raise on close
            pass


def alive(pg_cluster, pids):
    rows = pg_cluster.sql("SELECT pid FROM pg_stat_activity WHERE pid = ANY(%s)", params=[list(pids)])
    return {r[0] for r in rows}


def test_refuses_to_terminate_without_a_filter(pg_cluster, sessions):
    _apps, pids = sessions
    res = run_module(MODULE, params(pg_cluster))
    assert failed(res) and "at least one of states" in res["msg"]
    assert alive(pg_cluster, pids.values()) == set(pids.values())


def test_check_mode_lists_targets_and_terminates_nothing(pg_cluster, sessions):
    apps, pids = sessions
    res = run_module(MODULE, params(pg_cluster, states=["idle"], applications=[apps["idle"]], min_state_age=1),
                     check=True)
    assert not failed(res), res
    assert res["changed"] is True and res["terminated"] == []
    assert {t["pid"] for t in res["targets"]} == {pids["idle1"], pids["idle2"]}
    assert all("query" not in t for t in res["targets"])
    assert res["usage"]["max_connections"] >= 4 and res["usage"]["client_backends"] >= 4
    assert alive(pg_cluster, pids.values()) == set(pids.values())


def test_terminates_only_matching_sessions(pg_cluster, sessions):
    apps, pids = sessions
    res = run_module(MODULE, params(pg_cluster, states=["idle"], applications=[apps["idle"], apps["xact"]],
                                    min_state_age=1))
    assert not failed(res), res
    assert res["changed"] is True
    assert sorted(res["terminated"]) == sorted([pids["idle1"], pids["idle2"]])
    assert res["still_running"] == []
    assert alive(pg_cluster, pids.values()) == {pids["xact"], pids["keep"]}


def test_transaction_age_filter_and_idempotence(pg_cluster, sessions):
    apps, pids = sessions
    args = params(pg_cluster, min_xact_age=1, exclude_applications=[apps["keep"]],
                  applications=[apps["idle"], apps["xact"], apps["keep"]])
    res = run_module(MODULE, args)
    assert not failed(res), res
    assert res["terminated"] == [pids["xact"]]
    again = run_module(MODULE, args)
    assert not failed(again), again
    assert again["changed"] is False and again["terminated"] == [] and again["targets"] == []


def test_never_terminates_itself_or_background_workers(pg_cluster, sessions):
    _apps, pids = sessions
    # every state but limited to our own application name: the module's own session is the only candidate
    res = run_module(MODULE, params(pg_cluster, applications=["stackops-connections"]))
    assert not failed(res), res
    assert res["terminated"] == [] and res["changed"] is False
    listing = run_module(MODULE, params(pg_cluster, action="list", users=["postgres"]))
    assert all(t["backend_type"] == "client backend" for t in listing["targets"])
    workers = pg_cluster.sql("SELECT count(*) FROM pg_stat_activity WHERE backend_type <> 'client backend'")[0][0]
    assert workers > 0  # checkpointer, walwriter, autovacuum launcher... none was listed
    assert alive(pg_cluster, pids.values()) == set(pids.values())


def test_list_reports_usage_and_queries_on_request(pg_cluster, sessions):
    apps, pids = sessions
    res = run_module(MODULE, params(pg_cluster, action="list", applications=[apps["idle"]], include_query=True))
    assert not failed(res), res
    assert res["changed"] is False and len(res["targets"]) == 2 and "query" in res["targets"][0]
    assert res["usage"]["by_application"][apps["idle"]] == 2
