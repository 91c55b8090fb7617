"""The startup role's tier records and report (module_utils/startup.py through its filters), as the role wrote
them in Jinja before."""
from ansible_collections.stackops.runbooks.plugins.filter.startup import FilterModule
from ansible_collections.stackops.runbooks.plugins.module_utils.startup import startup_report, tier_record

UP_DB = {"elapsed": 1.25, "changed_services": ["db"]}
GATES = {"groups": [{"name": "postgres", "elapsed": 0.5}, {"name": "http", "elapsed": None}]}
SKIPPED = {"skipped": True, "changed": False}


def test_a_tier_takes_its_start_plus_its_slowest_gate():
    record = tier_record(UP_DB, GATES, ["db"], 0, postgres=True, urls=[{"name": "api", "url": "http://x"}])
    assert record == {"tier": 1, "services": ["db"], "seconds": 1.75, "changed_services": ["db"],
                      "gates": ["postgres", "api"], "summary": "tier 1 (db): 1.75s, started db"}


def test_a_healthy_tier_without_gates_says_so():
    record = tier_record({"elapsed": 0, "changed_services": []}, SKIPPED, ["api", "worker"], 1)
    assert record["seconds"] == 0.0 and isinstance(record["seconds"], float) and record["gates"] == []
    assert record["summary"] == "tier 2 (api, worker): 0.0s, already healthy"


def test_the_report_totals_the_tiers_and_names_where_it_stopped():
    records = [tier_record(UP_DB, GATES, ["db"], 0, postgres=True),
               tier_record({"elapsed": 0.1004, "changed_services": ["api"]}, SKIPPED, ["api"], 1)]
    report = startup_report(records, [["db"], ["api"]], True)
    assert report["total_seconds"] == 1.85 and report["changed_services"] == ["db", "api"]
    assert report["failed_tier"] is None and report["tiers"] == records
    assert report["lines"] == ["tier 1 (db): 1.75s, started db", "tier 2 (api): 0.1s, started api",
                               "total 1.85s, changed: db, api"]
    stopped = startup_report(records[:1], [["db"], ["api"], ["web"]], False)
    assert stopped["failed_tier"] == ["api"] and stopped["lines"][-1] == "total 1.75s, changed: db"


def test_nothing_started_before_the_first_tier_failed():
    report = FilterModule().filters()["startup_report"]([], None, False)
    assert report["failed_tier"] is None and report["total_seconds"] == 0
    assert report["lines"] == ["total 0s, changed: nothing"]
