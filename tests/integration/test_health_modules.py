"""host_resources on this host and pg_health against the throwaway pg_cluster, through ansible-runner."""
import threading

import pytest

from support.pgcluster import PgCluster
from support.runner import run_module
from support.wait import sessions_older_than, until


def failed(res):
    return bool(res["_run"].task_results(event_types=("runner_on_failed",)))


def by_name(res):
    return {check["name"]: check for check in res["checks"]}


# --- host_resources -------------------------------------------------------------------------

def test_host_resources_default_thresholds_shape():
    res = run_module("stackops.runbooks.host_resources_info", {"paths": ["/", "/tmp"]})
    assert not failed(res), res.get("msg")
    checks = by_name(res)
    assert "disk /" in checks and "memory" in checks and "load" in checks
    assert res["memory"]["total_bytes"] > 0 and 0 <= res["memory"]["used_percent"] <= 100
    assert res["load"]["cpus"] >= 1
    assert res["docker"]["rows"] and res["docker"]["root_dir"]
    # The same filesystem is reported once however many paths live on it.
    mounts = [disk["mount"] for disk in res["disks"]]
    assert len(mounts) == len(set(mounts))
    assert res["changed"] is False


def test_host_resources_zero_thresholds_force_levels():
    res = run_module("stackops.runbooks.host_resources_info", {
        "disk_warning": 0, "disk_critical": 100, "memory_warning": 0, "memory_critical": 0,
        "load_warning": 100000, "load_critical": 100000, "docker": False})
    assert not failed(res), res.get("msg")
    checks = by_name(res)
    assert checks["disk /"]["severity"] == "WARNING" and "(warning at 0%)" in checks["disk /"]["message"]
    assert checks["memory"]["severity"] == "CRITICAL" and "(critical at 0%)" in checks["memory"]["message"]
    assert checks["load"]["severity"] == "OK"
    assert "docker" not in res


def test_host_resources_missing_path_and_inverted_thresholds():
    res = run_module("stackops.runbooks.host_resources_info", {"paths": ["/no/such/dir"], "docker": False})
    assert by_name(res)["disk /no/such/dir"]["severity"] == "CRITICAL"
    bad = run_module("stackops.runbooks.host_resources_info", {"disk_warning": 95, "disk_critical": 90})
    assert failed(bad) and "warning threshold 95 is above critical threshold 90" in bad["msg"]


# --- pg_health ------------------------------------------------------------------------------

ALL_PG_CHECKS = ["readiness", "connections", "long_queries", "idle_in_transaction", "blocking_locks", "database_sizes",
                 "wraparound", "cache_hit_ratio", "bloat"]


def pg_args(cluster, **extra):
    args = {key: value for key, value in cluster.params().items() if key.startswith("login_")}
    args.update(extra)
    return args


@pytest.fixture
def quiet_cluster():
    """A server of its own: the session's pg_cluster carries what earlier tests left (cold reads, dead rows,
    killed clients), which a health check rightly reports."""
    cluster = PgCluster().start()
    yield cluster
    cluster.stop()


def test_pg_health_ready_with_every_check(quiet_cluster):
    pg_cluster = quiet_cluster
    res = run_module("stackops.runbooks.pg_health_info", pg_args(pg_cluster, checks=ALL_PG_CHECKS))
    assert not failed(res), res.get("msg")
    assert res["ready"] is True and res["server_version"].startswith("15")
    checks = by_name(res)
    assert set(checks) == {"postgres readiness", "postgres connections", "postgres long queries", "postgres idle in transaction",
                           "postgres blocking locks", "postgres database sizes", "postgres wraparound",
                           "postgres cache hit ratio", "postgres bloat"}
    assert all(check["severity"] == "OK" for check in checks.values()), [
        c["message"] for c in checks.values() if c["severity"] != "OK"]
    assert res["connections"]["max_connections"] >= 1 and res["connections"]["total"] >= 1
    assert "postgres" in res["database_sizes"]
    assert pg_cluster.password not in repr({k: v for k, v in res.items() if k != "_run"})


def test_pg_health_connection_thresholds(pg_cluster):
    res = run_module("stackops.runbooks.pg_health_info", pg_args(pg_cluster, connections_warning=0, connections_critical=100))
    check = by_name(res)["postgres connections"]
    assert check["severity"] == "WARNING" and "max_connections" in check["message"]
    assert sum(check["details"]["by_state"].values()) == check["details"]["total"]


def test_pg_health_sees_idle_in_transaction_and_blocked_sessions(pg_cluster):
    pg_cluster.sql("CREATE TABLE IF NOT EXISTS health_lock_probe (id int)")
    holder = pg_cluster.connect()
    holder.autocommit = False
    holder.execute("LOCK TABLE health_lock_probe IN ACCESS EXCLUSIVE MODE")
    waiter_done = threading.Event()

    def waiter():
        try:
            with pg_cluster.connect() as conn:
                conn.execute("SELECT count(*) FROM health_lock_probe")
        finally:
            waiter_done.set()

    thread = threading.Thread(target=waiter, daemon=True)
    thread.start()
    try:
        # Idle in its transaction for longer than the warning level, and a session blocked behind it, by the
        # server's own view (pg_stat_activity), not after a delay.
        with pg_cluster.connect() as conn:
            sessions_older_than(conn, [holder.info.backend_pid], 1)
            until(lambda: conn.execute("SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'")
                  .fetchone()[0], "a session blocked by the lock")
        res = run_module("stackops.runbooks.pg_health_info", pg_args(
            pg_cluster, checks=["idle_in_transaction", "blocking_locks"],
            idle_in_transaction_warning=1, idle_in_transaction_critical=3600, lock_wait_warning=0, lock_wait_critical=3600))
        checks = by_name(res)
        idle = checks["postgres idle in transaction"]
        assert idle["severity"] == "WARNING", idle["message"]
        holder_pid = holder.info.backend_pid
        assert idle["details"]["sessions"][0]["pid"] == holder_pid
        locks = checks["postgres blocking locks"]
        assert locks["severity"] == "WARNING", locks["message"]
        assert holder_pid in locks["details"]["blocked"][0]["blocked_by"]
        # Query text never leaves the server: it can carry personal data.
        assert "health_lock_probe" not in repr(res["checks"])
    finally:
        holder.rollback()
        holder.close()
        waiter_done.wait(10)


def test_pg_health_unreachable_is_critical_not_failed(pg_cluster):
    res = run_module("stackops.runbooks.pg_health_info", pg_args(pg_cluster, login_password="wrong-password"))
    assert not failed(res)
    assert res["ready"] is False
    check = by_name(res)["postgres readiness"]
    assert check["severity"] == "CRITICAL" and "cannot connect to postgresql://postgres@127.0.0.1" in check["message"]
    assert "wrong-password" not in repr(res["checks"])


def test_pg_health_wait_times_out_with_message(pg_cluster):
    res = run_module("stackops.runbooks.pg_health_info", pg_args(pg_cluster, login_port=1, wait=True, wait_timeout=2, interval=0.5))
    assert failed(res)
    assert "cannot connect" in res["msg"] and "waited" in res["msg"] and res["attempts"] >= 2


def test_pg_health_password_file(pg_cluster, tmp_path):
    secret = tmp_path / "pw"
    secret.write_text(pg_cluster.password + "\n")
    args = pg_args(pg_cluster, login_password_file=str(secret))
    del args["login_password"]
    res = run_module("stackops.runbooks.pg_health_info", args)
    assert res["ready"] is True, res["checks"]
    assert pg_cluster.password not in res["_run"].artifact_text()
