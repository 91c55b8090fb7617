"""Pure logic of notifications and off-site copies: which events a run is, redaction, URLs in reports, ETags."""
import hashlib

from ansible_collections.stackops.runbooks.plugins.module_utils.notify import (
    REDACTED, describe_url, events_for, redact, slack_payload)
from ansible_collections.stackops.runbooks.plugins.module_utils.offsite import multipart_etag

DEFAULT = ["failure", "recovered"]


def test_events_of_a_run():
    assert events_for("failed", None, DEFAULT) == ["failure"]
    assert events_for("failed", "failed", DEFAULT) == ["failure"]  # every failed run is heard of
    assert events_for("ok", "failed", DEFAULT) == ["recovered"]
    assert events_for("ok", "ok", DEFAULT) == []
    assert events_for("ok", None, DEFAULT + ["success"]) == ["success"]
    assert events_for("ok", "failed", DEFAULT + ["success"]) == ["recovered"]  # one message, not two
    assert events_for("failed", None, ["recovered"]) == []


def test_redaction_is_recursive_and_by_key():
    result = {"procedure": "backup", "db_password": "p", "nested": [{"secret_key": "s", "rows": 3}],
              "access_key": "AK", "token": "t", "backup_id": "appdb-1"}
    clean = redact(result)
    assert clean["db_password"] == clean["access_key"] == clean["token"] == REDACTED
    assert clean["nested"] == [{"secret_key": REDACTED, "rows": 3}] and clean["backup_id"] == "appdb-1"


def test_reported_urls_lose_their_secret_parts():
    assert describe_url("https://hooks.slack.com/services/T0/B0/XYZ") == "https://hooks.slack.com/..."
    assert describe_url("https://user:pw@example.com:8443/hook?token=1") == "https://example.com:8443/..."
    assert "XYZ" not in str(slack_payload("failure", "backup", "web1", "failed", "r1", {"error": "boom"}))


def test_multipart_etag_is_what_s3_computes():
    parts = [b"a" * 10, b"b" * 3]
    expected = hashlib.md5(b"".join(hashlib.md5(p).digest() for p in parts)).hexdigest() + "-2"
    assert multipart_etag([hashlib.md5(p).digest() for p in parts]) == expected


def test_a_retry_keeps_the_previous_run_and_closes_its_own_page():
    from ansible_collections.stackops.runbooks.plugins.module_utils.notify import run_view, started_state
    ok_before = {"status": "ok", "run_id": "r0", "sent": []}
    started = started_state(ok_before, "r1", {"ping:start"})
    assert started["previous_status"] == "ok" and run_view(started, "r1") == ({"ping:start"}, "ok")
    paged = {"status": "failed", "previous_status": "ok", "run_id": "r1", "sent": ["failure", "ping:start"]}
    # The retry's start ping changes nothing about the run before it; its good finish says "recovered".
    assert started_state(paged, "r1", {"failure", "ping:start"})["previous_status"] == "ok"
    assert run_view(paged, "r1") == ({"failure", "ping:start"}, "failed")
    assert events_for("ok", run_view(paged, "r1")[1], DEFAULT) == ["recovered"]
    assert run_view(paged, "r2") == (set(), "failed") and run_view(paged, None) == (set(), "failed")
