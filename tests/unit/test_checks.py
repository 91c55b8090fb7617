"""Severity, threshold, JSON-path and report logic of module_utils/checks.py."""
import pytest

from ansible_collections.stackops.runbooks.plugins.module_utils import checks
from ansible_collections.stackops.runbooks.plugins.module_utils.checks import CRITICAL, OK, WARNING


@pytest.mark.parametrize("value, expected", [
    (0, OK), (79.9, OK), (80, WARNING), (89.99, WARNING), (90, CRITICAL), (100, CRITICAL), (None, OK)])
def test_threshold_higher_is_worse(value, expected):
    assert checks.evaluate_threshold(value, 80, 90) == expected


@pytest.mark.parametrize("value, expected", [(99, OK), (90.1, OK), (90, WARNING), (80.5, WARNING), (80, CRITICAL), (0, CRITICAL)])
def test_threshold_lower_is_worse(value, expected):
    assert checks.evaluate_threshold(value, 90, 80, higher_is_worse=False) == expected


def test_zero_threshold_forces_the_level():
    # Operators (and our tests) prove the alert path by setting a limit to 0.
    assert checks.evaluate_threshold(0.0, 0, 100) == WARNING
    assert checks.evaluate_threshold(0.0, 0, 0) == CRITICAL


def test_missing_limits_never_alert():
    assert checks.evaluate_threshold(10 ** 9, None, None) == OK
    assert checks.evaluate_threshold(95, None, 90) == CRITICAL


def test_inverted_thresholds_are_rejected_with_the_fix():
    assert "warning threshold 95 is above critical threshold 90" in checks.validate_thresholds(95, 90, "disk")
    assert checks.validate_thresholds(80, 90, "disk") is None
    assert checks.validate_thresholds(80, 90, "cache", higher_is_worse=False) is not None
    assert checks.validate_thresholds(90, 80, "cache", higher_is_worse=False) is None


def test_threshold_check_message_names_value_and_limit():
    check = checks.threshold_check("disk /", 91.25, 80, 90, what="used")
    assert check["severity"] == CRITICAL
    assert check["message"] == "disk /: 91.2% used (critical at 90%)" or check["message"] == "disk /: 91.3% used (critical at 90%)"
    assert check["details"]["warning"] == 80 and check["details"]["value"] == 91.25
    assert checks.threshold_check("memory", 85, 85, 95)["message"] == "memory: 85% used (warning at 85%)"
    assert checks.threshold_check("load", 12.5, 80, 100)["message"] == "load: 12.5% used"


def test_worst_and_rank():
    assert checks.worst([]) == OK
    assert checks.worst([OK, WARNING, OK]) == WARNING
    assert checks.worst([WARNING, CRITICAL, OK]) == CRITICAL
    assert checks.worst(["ok", "warning"]) == WARNING
    # A typo in a severity must never make a problem look fine.
    assert checks.worst([OK, "WARN"]) == CRITICAL


def test_make_check_rejects_unknown_severity():
    with pytest.raises(ValueError):
        checks.make_check("x", "BAD", "x")


@pytest.mark.parametrize("data, path, expected", [
    ({"db": {"connected": True}}, "db.connected", (True, True)),
    ({"db": {"connected": True}}, "db.missing", (False, None)),
    ({"items": [{"name": "a"}, {"name": "b"}]}, "items.1.name", (True, "b")),
    ({"items": []}, "items.0", (False, None)),
    ({"a.b": 1}, "a.b", (True, 1)),
    ({"status": None}, "status", (True, None)),
    ({"status": "x"}, "status.deeper", (False, None)),
    ([1, 2], "1", (True, 2)),
])
def test_lookup_path(data, path, expected):
    assert checks.lookup_path(data, path) == expected


@pytest.mark.parametrize("expected, actual, match", [
    (True, True, True), (True, "true", True), ("true", True, True), (True, 1, False), (1, True, False),
    (5, 5.0, True), ("5", 5, True), ("healthy", "healthy", True), ("healthy", "starting", False),
    (None, None, True), ("null", None, True), (False, None, False), ({"a": 1}, {"a": 1}, True), ([1], [2], False)])
def test_values_match(expected, actual, match):
    assert checks.values_match(expected, actual) is match


def test_json_mismatches_explain_each_field():
    body = {"status": "starting", "db": {"connected": False}}
    problems = checks.json_mismatches(body, {"status": "healthy", "db.connected": True, "version": "1"})
    assert problems == [
        'JSON field status is "starting", expected "healthy"',
        'JSON field db.connected is false, expected true',
        'JSON field version missing (expected "1")',
    ]
    assert checks.json_mismatches(body, {"db.connected": False}) == []
    assert checks.json_mismatches(body, {}) == []


def test_body_regex():
    assert checks.body_regex_mismatch("hello\nready: yes", r"^ready: yes$") is None
    assert "does not match" in checks.body_regex_mismatch("nope", "ready")
    assert checks.body_regex_mismatch("anything", None) is None


def _sample_checks():
    return [checks.make_check("service api", CRITICAL, "service api: 0/1 containers running"),
            checks.make_check("disk /", WARNING, "disk /: 85% used (warning at 80%)"),
            checks.make_check("memory", OK, "memory: 10% used")]


def test_aggregate_counts_and_failure_policy():
    report = checks.aggregate(_sample_checks(), fail_on="critical", extra={"host": "h1"})
    assert report["severity"] == CRITICAL
    assert report["counts"] == {"ok": 1, "warning": 1, "critical": 1}
    assert report["critical"] == ["service api: 0/1 containers running"]
    assert report["warnings"] == ["disk /: 85% used (warning at 80%)"]
    assert report["failed"] is True and "service api: 0/1 containers running" in report["fail_message"]
    assert "disk" not in report["fail_message"]
    assert report["host"] == "h1"

    warning_policy = checks.aggregate(_sample_checks(), fail_on="warning")
    assert "disk /" in warning_policy["fail_message"] and warning_policy["failed"]
    assert checks.aggregate(_sample_checks(), fail_on="never")["failed"] is False
    healthy = checks.aggregate(_sample_checks()[2:], fail_on="warning")
    assert healthy["severity"] == OK and not healthy["failed"] and healthy["fail_message"] == ""


def test_aggregate_normalises_foreign_checks():
    report = checks.aggregate([{"name": "x", "severity": "warning", "message": "x: meh"}, "garbage",
                               {"name": "y", "severity": "SEVERE", "message": "y"}])
    assert [check["severity"] for check in report["checks"]] == [WARNING, CRITICAL, CRITICAL]
    assert report["checks"][0]["details"] == {}
    with pytest.raises(ValueError):
        checks.aggregate([], fail_on="sometimes")


def test_summary_lines_worst_first():
    lines = checks.summary_lines(checks.aggregate(_sample_checks()))
    assert lines[0] == "overall CRITICAL (1 ok, 1 warning, 1 critical)"
    assert lines[1].startswith("CRITICAL") and lines[2].startswith("WARNING") and lines[3].startswith("OK")
