"""Target-independent off-site decisions (module_utils/offsite_plan.py), shared by the S3 and SSH modules, and what
an ssh target may receive while age recipients are set (module_utils/offsite.py)."""
import datetime

import pytest

from ansible_collections.stackops.runbooks.plugins.module_utils import offsite_plan
from ansible_collections.stackops.runbooks.plugins.module_utils.backup_set import BackupError, isoformat
from ansible_collections.stackops.runbooks.plugins.module_utils.offsite import OffsiteError
from ansible_collections.stackops.runbooks.plugins.module_utils.offsite import plaintext_problems, refuse_plaintext

UTC = datetime.timezone.utc
NOW = datetime.datetime(2026, 3, 31, 12, tzinfo=UTC)
POLICY = dict(keep_last=1, keep_daily=0, keep_weekly=0, keep_monthly=0)


def local(backup_id, verified=True, database="appdb", group=None, group_databases=()):
    return dict(id=backup_id, verified=verified, database=database, group=group,
                group_databases=list(group_databases), path="/nonexistent/" + backup_id)


def params(**kw):
    base = dict(backup_id=None, sets="latest", database="appdb", backup_dir="/b", group_id=None)
    base.update(kw)
    return base


def test_latest_copies_the_newest_verified_set_only():
    sets = [local("appdb-20260331T030000Z", verified=False), local("appdb-20260330T030000Z"),
            local("appdb-20260329T030000Z")]
    chosen = offsite_plan.choose_sets(params(), sets, set())
    assert [entry["id"] for entry in chosen] == ["appdb-20260330T030000Z"]


def test_all_copies_every_verified_set_not_on_the_target():
    sets = [local("appdb-20260331T030000Z"), local("appdb-20260330T030000Z", verified=False),
            local("appdb-20260329T030000Z")]
    chosen = offsite_plan.choose_sets(params(sets="all"), sets, {"appdb-20260331T030000Z"})
    assert [entry["id"] for entry in chosen] == ["appdb-20260329T030000Z"]


def test_an_unverified_or_unknown_backup_id_is_refused_with_the_next_step():
    sets = [local("appdb-20260331T030000Z", verified=False)]
    with pytest.raises(BackupError, match="pg_backup_verify"):
        offsite_plan.choose_sets(params(backup_id="appdb-20260331T030000Z"), sets, set())
    with pytest.raises(BackupError, match="pg_backup_info"):
        offsite_plan.choose_sets(params(backup_id="appdb-20260101T030000Z"), sets, set())
    with pytest.raises(BackupError, match="not a backup id"):
        offsite_plan.choose_sets(params(backup_id="../etc"), sets, set())


def test_a_group_is_copied_whole_or_not_at_all():
    members = [local("a-20260331T030000Z", database="a", group="g1", group_databases=["a", "b"]),
               local("b-20260331T030000Z", database="b", group="g1", group_databases=["a", "b"])]
    chosen = offsite_plan.choose_sets(params(group_id="g1"), members, set())
    assert [entry["database"] for entry in chosen] == ["a", "b"]
    with pytest.raises(BackupError, match="incomplete .no set of b"):
        offsite_plan.choose_sets(params(group_id="g1"), members[:1], set())
    members[1]["verified"] = False
    with pytest.raises(BackupError, match="unverified sets"):
        offsite_plan.choose_sets(params(group_id="g1"), members, set())


def test_retention_never_deletes_the_newest_verified_copy_and_skips_group_members():
    times = [NOW - datetime.timedelta(days=d) for d in range(3)]
    remote = [dict(id="appdb-%d" % d, started_at=isoformat(t), verified=(d == 1)) for d, t in enumerate(times)]
    remote.append(dict(id="appdb-g", started_at=isoformat(NOW - datetime.timedelta(days=9)), verified=True, group="g"))
    keep, doomed = offsite_plan.retention_decision(offsite_plan.single_sets(remote), POLICY)
    assert "appdb-1" in keep and "appdb-0" in keep
    assert doomed == ["appdb-2"]
    with pytest.raises(BackupError):
        offsite_plan.checked_policy(dict(POLICY, keep_last=-1))


def test_unfinished_copies_are_removed_only_when_nothing_can_resume_them():
    unfinished = [dict(id="appdb-1"), dict(id="appdb-2"), dict(id="appdb-3", problem="bad marker"),
                  dict(id="other-1"), dict(id="appdbx-1")]
    ids = offsite_plan.local_ids([dict(id="appdb-1")], [dict(id="x")])
    assert offsite_plan.unfinished_leftovers(unfinished, ["appdb"], ids) == ["appdb-2"]
    assert offsite_plan.unfinished_leftovers(unfinished, ["appdb", "other"], ids) == ["appdb-2", "other-1"]


def test_result_shapes():
    entries = [dict(id="n", verified=False, age_seconds=5), dict(id="v", verified=True, age_seconds=50)]
    assert offsite_plan.newest_verified(entries) == dict(latest_verified=dict(id="v", age_seconds=50), rpo_seconds=50)
    assert offsite_plan.newest_verified([]) == dict(latest_verified=None, rpo_seconds=None)
    listing = offsite_plan.listing_result(entries, [], {"v": ["damaged"]}, "appdb")
    assert listing["latest"] == dict(id="n", age_seconds=5)
    assert listing["latest_verified"] is None and listing["rpo_seconds"] is None and listing["ok"] is False
    assert offsite_plan.listing_result(entries, [], {}, None)["rpo_seconds"] is None
    problems = offsite_plan.check_listed(entries, lambda entry: ["bad"] if entry["id"] == "n" else [])
    assert problems == {"n": ["bad"]} and [entry["intact"] for entry in entries] == [False, True]
    result = dict(copied=[], retention=dict(deleted=[], unfinished_removed=["x"]), uploaded_bytes=2 * offsite_plan.MIB)
    offsite_plan.finish_copy_result(result, 2.0)
    assert result["changed"] is True and result["throughput_mib_per_second"] == 1.0


def test_a_copy_entry_is_shaped_from_its_marker():
    marker = dict(database="appdb", started_at=isoformat(NOW - datetime.timedelta(seconds=90)), verified=True,
                  encryption=dict(method="age"), group_databases=None)
    entry = offsite_plan.copy_entry("appdb-1", marker, "s3://b/", NOW)
    assert entry["age_seconds"] == 90 and entry["encrypted"] is True and entry["group_databases"] == []
    assert entry["location"] == "s3://b/" and entry["group"] is None


def test_the_newest_wal_segment_ignores_history_files():
    from ansible_collections.stackops.runbooks.plugins.module_utils import offsite_pitr
    rels = ["0000000100000000/000000010000000000000004", "00000002.history",
            "0000000100000000/000000010000000000000003.00000028.backup"]
    assert offsite_pitr.newest_segment(rels) == "000000010000000000000004"
    assert offsite_pitr.newest_segment(["00000002.history"]) is None


def test_a_recovery_target_value_is_checked_before_anything_is_read():
    from ansible_collections.stackops.runbooks.plugins.module_utils import pitr
    pitr.check_target_value("latest", None)
    pitr.check_target_value("lsn", "0/5A0003B8")
    with pytest.raises(pitr.PitrError, match="needs target_value"):
        pitr.check_target_value("time", "")
    with pytest.raises(pitr.PitrError, match="not an LSN"):
        pitr.check_target_value("lsn", "zz")


def sealed(backup_id, *recipients):
    return dict(id=backup_id, encryption=dict(method="age", recipients=list(recipients)))


def test_ssh_targets_take_only_sets_encrypted_at_rest_to_every_configured_recipient():
    group = [sealed("app-20260331T030000Z", "age1a", "age1b"), dict(id="reports-20260331T030000Z")]
    assert plaintext_problems(group, []) == []  # no recipients: sets go as they are on disk
    assert plaintext_problems(group[:1], ["age1a", " age1b", "# comment"]) == []
    assert plaintext_problems([sealed("app-20260331T030000Z", "age1a")], ["age1a", "age1b"]) == [
        "app-20260331T030000Z is encrypted at rest to age1a, not to age1b"]
    with pytest.raises(OffsiteError) as refused:  # one plaintext set refuses the whole group
        refuse_plaintext(group, ["age1a"], "ssh://backup1:22/srv", group_id="20260331T030000Z")
    msg = str(refused.value)
    for words in ("backup group 20260331T030000Z", "reports-20260331T030000Z is not encrypted at rest",
                  "stackops_offsite_age_recipients", "stackops_backup_encrypt: true", "nothing was sent"):
        assert words in msg, msg
