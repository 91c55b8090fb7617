"""The pure logic of restore drills and the recoverability status: the override, URL mapping, answers, objectives,
the drill catalog's summary and the status judgement (module_utils/drill.py and recoverability.py)."""
import json

import pytest
import yaml

from ansible_collections.stackops.runbooks.plugins.module_utils.drill import (
    DATA_VOLUME, DrillError, Reset, check_results, closure, data_target, drill_metrics, drill_summary, http_check,
    map_url, objective_seconds, override_model, phase_seconds, published_ports, render_override, sql_expectation_met)
from ansible_collections.stackops.runbooks.plugins.module_utils.recoverability import drill_problems, human_age, judge

LIVE = {
    "name": "shop",
    "services": {
        "database": {
            "environment": {"PGDATA": "/srv/pg/main", "POSTGRES_USER": "owner"},
            "volumes": [{"type": "bind", "source": "/srv/shop/pgroot", "target": "/srv/pg", "bind": {}},
                        {"type": "bind", "source": "/srv/shop/initdb", "target": "/docker-entrypoint-initdb.d",
                         "read_only": True}],
            "ports": [{"target": 5432, "published": "56201", "host_ip": "127.0.0.1", "protocol": "tcp"}],
            "container_name": "shop-db",
        },
        "backend": {
            "depends_on": {"database": {"condition": "service_healthy"}, "cache": {"condition": "service_healthy"}},
            "ports": [{"target": 8080, "published": "56210", "host_ip": "127.0.0.1"}],
            "volumes": [{"type": "bind", "source": "/srv/shop/uploads", "target": "/uploads"},
                        {"type": "volume", "source": "certs", "target": "/certs"}],
            "networks": {"default": None, "edge": None},
        },
        "cache": {"network_mode": "host"},
        "worker": {"depends_on": ["cache"]},
    },
    "volumes": {"certs": {"name": "shared-certs"}, "scratch": {"name": "shop_scratch"}},
    "networks": {"default": {"name": "shop_default"}, "edge": {"name": "edge", "external": True}},
}


def test_the_override_isolates_the_drill_from_the_live_project():
    model, info = override_model(LIVE, "shop", "database", {"backend": "sha256:abc"}, {"worker": {"SMTP_HOST": "nowhere"}})
    db = model["services"]["database"]
    # The data: a fresh volume on the bind mount holding the custom PGDATA; the read-only init scripts stay as they are.
    assert info["pgdata"] == "/srv/pg/main" and info["data_target"] == "/srv/pg"
    assert db["volumes"] == [{"type": "volume", "source": DATA_VOLUME, "target": "/srv/pg"}]
    assert isinstance(db["ports"], Reset) and isinstance(db["container_name"], Reset)
    backend = model["services"]["backend"]
    assert backend["image"] == "sha256:abc" and backend["pull_policy"] == "never"
    assert backend["volumes"] == [{"type": "bind", "source": "/srv/shop/uploads", "target": "/uploads",
                                   "read_only": True}]
    assert isinstance(model["services"]["cache"]["network_mode"], Reset)
    assert model["services"]["worker"]["environment"] == {"SMTP_HOST": "nowhere"}
    # Volumes and networks that name themselves become the drill's; the project's own ones already are.
    assert set(model["volumes"]) == {DATA_VOLUME, "certs"} and set(model["networks"]) == {"edge"}
    assert any("host network" in note for note in info["notes"])


def test_the_override_renders_the_reset_tags_compose_needs():
    model, dummy = override_model(LIVE, "shop", "database", {}, {})
    text = render_override(model)
    assert '"ports": !reset []' in text and '"container_name": !reset null' in text
    assert '"name": !reset null' in text and '"external": !reset false' in text
    loader = type("ResetLoader", (yaml.SafeLoader,), {})
    loader.add_constructor("!reset", lambda load, node: "RESET")
    parsed = yaml.load(text, Loader=loader)  # nosec: SafeLoader with one extra tag
    assert parsed["volumes"][DATA_VOLUME] == {} and parsed["volumes"]["certs"] == {"name": "RESET", "external": "RESET"}
    assert parsed["services"]["database"]["volumes"] == [{"type": "volume", "source": DATA_VOLUME, "target": "/srv/pg"}]
    assert parsed["services"]["backend"]["labels"] == {"stackops.drill": "shop"}


def test_the_override_refuses_an_unknown_database_service_and_environment_of_unknown_services():
    with pytest.raises(DrillError, match="stackops_db_service"):
        override_model(LIVE, "shop", "postgres", {}, {})
    with pytest.raises(DrillError, match="mailer"):
        override_model(LIVE, "shop", "database", {}, {"mailer": {"A": "1"}})


def test_data_target_without_a_mount_is_pgdata_itself():
    assert data_target({"volumes": []}, "/var/lib/postgresql/data") == "/var/lib/postgresql/data"
    assert data_target({"volumes": [{"target": "/var/lib/postgresql/data"}]},
                       "/var/lib/postgresql/data/pgdata") == "/var/lib/postgresql/data"


def test_urls_are_pointed_at_the_service_publishing_their_port():
    ports = published_ports(LIVE)
    assert ports == {56201: ("database", 5432), 56210: ("backend", 8080)}
    addresses = {"backend": "172.20.0.4"}
    assert map_url("http://127.0.0.1:56210/orders/count?x=1", ports, addresses) == (
        "http://172.20.0.4:8080/orders/count?x=1", "backend")
    assert map_url("https://shop.example.com/health", ports, addresses)[0] is None
    mapped, dummy = http_check({"name": "n", "url": "http://localhost:56210/", "status": 201, "method": "POST"},
                               ports, addresses, "x")
    assert mapped["url"] == "http://172.20.0.4:8080/" and mapped["status_code"] == [201] and mapped["method"] == "POST"
    direct, dummy = http_check({"service": "backend", "port": 8080, "path": "/healthz"}, ports, addresses, "check 1")
    assert direct["url"] == "http://172.20.0.4:8080/healthz" and direct["name"] == "check 1"
    missing, reason = http_check({"name": "db", "service": "cache"}, ports, addresses, "x")
    assert missing is None and "cache" in reason


def test_closure_adds_what_services_depend_on():
    assert closure(LIVE, ["backend"]) == ["backend", "cache", "database"]
    assert closure(LIVE, ["worker", "nope"]) == ["worker", "cache"]


@pytest.mark.parametrize("got, expected, met", [
    (True, True, True), (False, True, False), ("t", True, True), (None, None, True), (None, "null", True),
    (3, 3, True), ("3.0", 3, True), (150, 149, False), ("abc", "abc", True), ("abc", "ABC", False),
])
def test_sql_answers(got, expected, met):
    assert sql_expectation_met(got, expected) is met


def test_objectives_parse_durations_and_refuse_nonsense():
    assert objective_seconds("24h", "x") == 86400 and objective_seconds(90, "x") == 90
    assert objective_seconds("", "x") is None and objective_seconds(None, "x") is None
    with pytest.raises(DrillError, match="stackops_rpo"):
        objective_seconds("soon", "stackops_rpo")
    with pytest.raises(DrillError, match="positive"):
        objective_seconds("0m", "stackops_rto")


def test_phases_and_checks():
    marks = {"start": 100.0, "fetched": 100.0, "restored": 130.5, "started": 140.0, "checked": 142.25}
    assert phase_seconds(marks) == {"fetch": 0.0, "restore": 30.5, "start": 9.5, "checks": 2.25}
    assert phase_seconds({"start": 1.0, "fetched": 2.0}) == {"fetch": 1.0}
    checks = check_results([{"name": "api", "healthy": False, "check": {"message": "http api: HTTP 503"},
                             "item": {"kind": "health", "source_url": "http://127.0.0.1/"}},
                            {"skipped": True, "item": {}}],
                           [{"name": "rows", "ok": True, "message": "check rows: got 3"}])
    assert [(c["name"], c["kind"], c["ok"]) for c in checks] == [("api", "health", False), ("rows", "sql", True)]


def _record(number, status, rto, finished):
    return {"id": "drill-%d" % number, "status": status, "rto_seconds": rto, "finished_epoch": finished,
            "failed_checks": [] if status == "passed" else ["records-write"], "error": None if status == "passed"
            else "the application does not work on the restored copy"}


def test_drill_summary_trend_and_metrics():
    records = [_record(3, "failed", None, 3000.0), _record(2, "passed", 40.0, 2000.0), _record(1, "passed", 50.0, 1000.0)]
    summary = drill_summary(records, now=3600.0)
    assert summary["last"]["id"] == "drill-3" and summary["last_success"]["id"] == "drill-2"
    assert summary["rto_trend"] == [40.0, 50.0] and summary["last_success_age_seconds"] == 1600
    text = drill_metrics('shop "a"', summary)
    assert 'stackops_drill_last_success_timestamp{stack="shop \\"a\\""} 2000.0' in text
    assert 'stackops_drill_rto_seconds{stack="shop \\"a\\""} 40.0' in text
    assert 'stackops_drill_last_passed{stack="shop \\"a\\""} 0' in text
    empty = drill_metrics("x", drill_summary([]))
    assert 'stackops_drill_rto_seconds{stack="x"} NaN' in empty


def test_drill_problems():
    summary = drill_summary([_record(2, "failed", None, 900.0), _record(1, "passed", 700.0, 100.0)], now=1000.0)
    problems = drill_problems(summary, rto=600, max_age=500)
    assert any("drill-2) failed its check(s) records-write" in text for text in problems)
    assert any("drill-1) is 15m00s old" in text for text in problems)
    assert any("took 11m40s to recover, longer than the RTO 10m00s" in text for text in problems)
    assert drill_problems(drill_summary([]), rto=None, max_age=None) == []
    assert "no restore drill has run" in drill_problems(drill_summary([]), rto=None, max_age=60)[0]


def test_judge_names_each_objective_not_met_and_nothing_on_a_healthy_stack():
    healthy = {
        "project": "shop", "services": [{"service": "db", "ok": True, "state": "service db: 1/1"}],
        "logical": {"database": "shop", "newest_verified": {"id": "shop-1", "age_seconds": 60}},
        "pitr": {"enabled": True, "server": "shop", "problems": [], "newest_verified": {"id": "b1"},
                 "latest_recoverable_age_seconds": 5},
        "offsite": [{"target": "s3", "database": "shop", "newest_verified": "shop-1", "age_seconds": 70}],
        "drills": drill_summary([_record(1, "passed", 30.0, 990.0)], now=1000.0),
        "schedules": [{"name": "backup", "last_run": {"status": "successful"}}, {"name": "drill", "last_run": None}],
    }
    objectives = {"rpo": 3600, "rto": 60, "drill_max_age": 86400}
    assert judge(healthy, objectives) == []
    broken = dict(healthy, services=[{"service": "db", "ok": False, "state": "service db: 0/1 containers running"}],
                  logical={"database": "shop", "newest_verified": {"id": "shop-1", "age_seconds": 7200}},
                  pitr=dict(healthy["pitr"], problems=["the WAL receiver of shop is not running"]),
                  offsite=[{"target": "s3", "database": "shop", "newest_verified": None, "age_seconds": None}],
                  drills=drill_summary([_record(2, "failed", None, 995.0), _record(1, "passed", 30.0, 990.0)], now=1000.0),
                  schedules=[{"name": "backup", "last_run": {"status": "failed", "run_id": "r1", "started": "t",
                                                             "error": "disk full"}}])
    problems = judge(broken, objectives)
    assert problems[0] == "service db: 0/1 containers running"
    assert any("appdb" not in text and "shop-1) is 2h00m old, older than the RPO 1h00m" in text for text in problems)
    assert "PITR: the WAL receiver of shop is not running" in problems
    assert any("off-site target s3 holds no verified copy of shop" in text for text in problems)
    assert any("last restore drill (drill-2) failed" in text for text in problems)
    assert any(text.startswith("schedule backup: its last run r1 (t) failed: disk full") for text in problems)
    assert len(problems) == 6
    assert "no verified logical backup of shop" in judge(dict(healthy, logical={"database": "shop"}), objectives)[0]


def test_human_age():
    assert [human_age(v) for v in (None, 5, 65, 7260, 90000)] == ["never", "5s", "1m05s", "2h01m", "1d01h"]


def test_a_copy_run_records_the_targets_newest_copy_for_status(tmp_path):
    from ansible_collections.stackops.runbooks.plugins.module_utils.offsite_plan import record_copy_state
    from ansible_collections.stackops.runbooks.plugins.module_utils.recoverability import offsite_copies
    result = {"target": "s3://bucket/prod/", "target_name": "eu", "latest_verified": {"id": "shop-1", "age_seconds": 100}}
    record_copy_state(str(tmp_path), result, "shop")
    record_copy_state(str(tmp_path), dict(result, target_name="us", latest_verified=None), "shop")
    record_copy_state(str(tmp_path), dict(result, latest_verified={"id": "shop-2", "age_seconds": 5}), "shop")
    recorded = json.loads((tmp_path / ".offsite" / "eu-shop.json").read_text())["recorded_epoch"]
    copies = offsite_copies(str(tmp_path), recorded + 50)
    assert [(c["target"], c["newest_verified"]) for c in copies] == [("eu", "shop-2"), ("us", None)]
    assert copies[0]["age_seconds"] == 55 and copies[1]["age_seconds"] is None


def test_failed_check_messages_read_the_checks_as_the_record_does():
    from ansible_collections.stackops.runbooks.plugins.filter.drill import FilterModule
    http = [{"item": {"name": "health"}, "healthy": True, "check": {"message": "200 OK"}},
            {"item": {"name": "orders"}, "healthy": False, "check": {"message": "orders: 500"}},
            {"item": {"name": "skipped"}, "skipped": True}]
    sql = [{"name": "rows", "ok": False, "message": "rows: 0 < 1"}, {"name": "users", "ok": True, "message": "fine"}]
    assert FilterModule().filters()["drill_failed_checks"](http, sql) == ["orders: 500", "rows: 0 < 1"]
    assert FilterModule().filters()["drill_failed_checks"]([], []) == []
