"""Pure logic of module_utils/maintenance.py: deadlines, lock rules, bloat and session selection."""
import datetime

import pytest

from ansible_collections.stackops.runbooks.plugins.module_utils import maintenance as m

UTC = datetime.timezone.utc
START = datetime.datetime(2026, 11, 23, 20, 0, tzinfo=UTC)


@pytest.mark.parametrize("value, expected", [
    ("90", START + datetime.timedelta(minutes=90)),
    ("0", START),
    ("2026-11-23T22:00:00Z", datetime.datetime(2026, 11, 23, 22, 0, tzinfo=UTC)),
    ("2026-11-23T23:00:00+01:00", datetime.datetime(2026, 11, 23, 22, 0, tzinfo=UTC)),
    ("2026-11-23 22:00", datetime.datetime(2026, 11, 23, 22, 0, tzinfo=UTC)),  # no offset: UTC
])
def test_parse_deadline(value, expected):
    assert m.parse_deadline(value, start=START) == expected


@pytest.mark.parametrize("value", [None, "", "  "])
def test_no_deadline(value):
    assert m.parse_deadline(value) is None
    assert m.seconds_left(None) is None


def test_bad_deadline_says_which_forms_work():
    with pytest.raises(ValueError, match="minutes from now .* ISO 8601"):
        m.parse_deadline("tomorrow evening")


def test_seconds_left():
    deadline = START + datetime.timedelta(seconds=30)
    assert m.seconds_left(deadline, now=START) == 30
    assert m.seconds_left(deadline, now=START + datetime.timedelta(minutes=1)) == -30


@pytest.mark.parametrize("operation, concurrently, version, exclusive", [
    ("vacuum", True, 150000, False),
    ("vacuum_analyze", True, 150000, False),
    ("vacuum_freeze", True, 150000, False),
    ("analyze", True, 150000, False),
    ("vacuum_full", True, 150000, True),
    ("reindex", True, 150000, False),
    ("reindex", False, 150000, True),
    ("reindex", True, 110000, True),  # no CONCURRENTLY before PostgreSQL 12
])
def test_needs_exclusive_lock(operation, concurrently, version, exclusive):
    assert m.needs_exclusive_lock(operation, concurrently, version) is exclusive


def test_split_table_name():
    assert m.split_table_name("public.records") == ("public", "records")
    assert m.split_table_name("records") == (None, "records")


@pytest.mark.parametrize("live, dead, expected", [(0, 0, 0.0), (None, None, 0.0), (80, 20, 20.0), (1, 2, 66.67)])
def test_bloat_from_stats(live, dead, expected):
    assert m.bloat_percent_from_stats(live, dead) == expected


def test_select_bloated():
    tables = [
        {"table": "big", "bloat_percent": 60.0, "dead_tuples": 5000, "total_bytes": 10 ** 7, "bloat_method": "stats"},
        {"table": "clean", "bloat_percent": 1.0, "dead_tuples": 10, "total_bytes": 10 ** 7, "bloat_method": "stats"},
        {"table": "few", "bloat_percent": 50.0, "dead_tuples": 3, "total_bytes": 10 ** 7, "bloat_method": "stats"},
        {"table": "tiny", "bloat_percent": 90.0, "dead_tuples": 0, "total_bytes": 8192, "bloat_method": "pgstattuple"},
    ]
    selected, skipped = m.select_bloated(tables, 20, min_dead_tuples=100, min_table_bytes=65536)
    assert [t["table"] for t in selected] == ["big"]
    reasons = {t["table"]: t["reason"] for t in skipped}
    assert "below threshold" in reasons["clean"]
    assert "dead tuples 3 below minimum 100" == reasons["few"]
    assert "size 8192 bytes" in reasons["tiny"]
    assert m.select_bloated(tables, None) == (tables, [])


def test_stats_estimate_needs_at_least_one_dead_tuple():
    table = {"table": "t", "bloat_percent": 0.0, "dead_tuples": 0, "total_bytes": 1, "bloat_method": "stats"}
    assert m.select_bloated([table], 0)[0] == []


SESSION = {"pid": 1, "user": "app", "application": "demo-api", "database": "appdb", "state": "idle",
           "state_age": 700.0, "xact_age": None}


@pytest.mark.parametrize("filters, matches", [
    ({}, True),
    ({"states": ["idle"]}, True),
    ({"states": ["active"]}, False),
    ({"users": ["other"]}, False),
    ({"applications": ["demo-api"], "databases": ["appdb"]}, True),
    ({"databases": ["postgres"]}, False),
    ({"exclude_users": ["app"]}, False),
    ({"exclude_applications": ["demo-api"]}, False),
    ({"min_state_age": 600}, True),
    ({"min_state_age": 800}, False),
    ({"min_xact_age": 1}, False),  # not in a transaction
])
def test_session_matches(filters, matches):
    assert m.session_matches(SESSION, filters) is matches


def test_has_session_filter():
    assert not m.has_session_filter({"states": [], "exclude_users": ["x"], "min_state_age": None})
    assert m.has_session_filter({"states": ["idle"]})
    assert m.has_session_filter({"min_xact_age": 0})


@pytest.mark.parametrize("count, text", [(None, None), (0, "0 B"), (1536, "1.5 KiB"), (-1048576, "-1.0 MiB"),
                                         (5 * 1024 ** 5, "5120.0 TiB")])
def test_human_bytes(count, text):
    assert m.human_bytes(count) == text


def test_flag_scripts_take_their_arguments_positionally():
    for action in ("read", "set", "clear"):
        script = m.maintenance_flag_script(action)
        assert '"$1"' in script and "{" not in script
    with pytest.raises(KeyError):
        m.maintenance_flag_script("explode")


# --- the window's report in words (the role's filters maintenance_summary and maintenance_failure) ---

REPORT = dict(status="ok", maintenance_strategy="pause_writers", writers_held=["api", "worker"],
              done=[{"name": "vacuum_analyze"}, {"name": "docker_prune"}], skipped=[{"name": "log_cleanup"}],
              reclaimed="2.00 KB", backup_id="appdb-1", restore_point={"name": "rp", "lsn": "0/1"},
              warnings=["a", "b"], maintenance_mode="off", health_after="OK")


def test_window_summary_names_every_part_of_the_window():
    assert m.window_summary(REPORT) == (
        "maintenance ok (writers paused: api, worker):\ndone vacuum_analyze, docker_prune; skipped log_cleanup; "
        "reclaimed 2.00 KB; backup appdb-1; restore point rp at 0/1; warnings: a; b")
    quiet = dict(REPORT, maintenance_strategy="page", writers_held=[], done=[], skipped=[], backup_id=None,
                 restore_point=None, warnings=[])
    assert m.window_summary(quiet) == "maintenance ok (maintenance page):\ndone nothing; skipped nothing; reclaimed 2.00 KB"


@pytest.mark.parametrize("rollback, words", [
    (dict(images_restored=["api"], database_restored=True, backup_id="appdb-1"),
     "images of api;\ndatabase restored from backup appdb-1;\n"),
    (dict(images_restored=[], images_failed=["api"], database_restored=False, database_restore_reason="no backup"),
     "images of no service (FAILED for api: restore them by hand with docker tag ID REF and docker compose up -d);\n"
     "database NOT restored (no backup);\n"),
    (dict(images_restored=["api"], database_restored=True, database_restored_by="pitr", restore_point={"name": "rp"},
          previous_data="/data.before"),
     "images of api;\ndatabase recovered to restore point rp (the data before the rollback is kept in /data.before);\n"),
])
def test_rollback_failure_says_what_was_put_back(rollback, words):
    report = dict(REPORT, status="rolled_back", failed=dict(step="reindex", task="Run reindex", message="boom"),
                  rollback=rollback)
    assert m.rollback_failure(report) == (
        'maintenance step reindex failed in task "Run reindex": boom. Rolled back: ' + words
        + "maintenance mode off; health after rollback: OK. Fix the cause shown above and run the window again; the "
          "full report is in stackops_result.")


def test_connections_summary_counts_what_was_signalled_or_would_be():
    result = dict(usage=dict(client_backends=98, max_connections=100, usage_percent=98.0),
                  targets=[{"pid": 1}, {"pid": 2}], terminated=[1])
    assert m.connections_summary(result, "terminate", False, 300) == (
        "connections 98/100 (98.0%); terminated 1 session(s) idle > 300 s")
    assert m.connections_summary(result, "terminate", True, 300) == (
        "connections 98/100 (98.0%); would terminate 2 session(s) idle > 300 s")
    assert m.connections_summary(dict(targets=[]), "list", False) == "connections ?/? (?%); found 0 session(s)"


def test_prune_record_adds_up_every_kind_of_space():
    record = m.prune_record({"changed": True, "containers": ["c1"], "images": ["i1", "i2"],
                             "containers_space_reclaimed": 1024, "images_space_reclaimed": 1024,
                             "builder_cache_space_reclaimed": None})
    assert record == {"name": "docker_prune", "changed": True, "containers_removed": 1, "images_removed": 2,
                      "reclaimed_bytes": 2048, "reclaimed": "2.00 KB"}
    assert m.prune_record({})["reclaimed"] == "0.00 Bytes"
