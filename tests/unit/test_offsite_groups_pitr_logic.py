"""Pure logic of off-site groups and physical copies: which copies form a group, which WAL is old, which is needed."""
from ansible_collections.stackops.runbooks.plugins.module_utils import offsite, offsite_pitr
from ansible_collections.stackops.runbooks.plugins.module_utils.backup_retention import retention_plan


def _copy(backup_id, database, group, started, verified=True, planned=("app", "postgres")):
    return dict(id=backup_id, database=database, group=group, group_databases=list(planned),
                started_at=started, verified=verified)


def test_a_group_counts_as_verified_only_when_complete_and_all_verified():
    sets = [_copy("app-2", "app", "all-2", "2026-12-02T03:00:01.000000Z"),
            _copy("postgres-2", "postgres", "all-2", "2026-12-02T03:00:00.000000Z", verified=False),
            _copy("app-1", "app", "all-1", "2026-12-01T03:00:01.000000Z"),
            _copy("postgres-1", "postgres", "all-1", "2026-12-01T03:00:00.000000Z"),
            _copy("app-0", "app", "all-0", "2026-11-30T03:00:00.000000Z"),  # its postgres copy never arrived
            dict(id="single-1", database="app", group=None, started_at="2026-12-02T04:00:00.000000Z", verified=True)]
    groups = offsite.copy_groups(sets)
    assert [g["id"] for g in groups] == ["all-2", "all-1", "all-0"]
    assert [g["verified"] for g in groups] == [False, True, False]
    assert groups[2]["missing"] == ["postgres"] and not groups[2]["complete"]
    assert groups[1]["sets"] == ["app-1", "postgres-1"] and groups[1]["started_at"] == "2026-12-01T03:00:00.000000Z"
    keep, doomed = retention_plan(groups, 1, 0, 0, 0)
    # The newest verified group stays whole; the unverified newer one waits; the broken old one goes.
    assert "all-1" in keep and "all-2" in keep and doomed == ["all-0"]


def test_old_wal_is_judged_by_segment_and_history_files_stay():
    cutoff = "000000010000000000000005"
    assert offsite_pitr.wal_before("0000000100000000/000000010000000000000004", cutoff)
    assert offsite_pitr.wal_before("0000000100000000/000000010000000000000004.00000028.backup", cutoff)
    assert not offsite_pitr.wal_before("0000000100000000/000000010000000000000005", cutoff)
    assert not offsite_pitr.wal_before("0000000100000000/000000010000000000000005.00000060.backup", cutoff)
    assert not offsite_pitr.wal_before("00000002.history", cutoff)
    # a later timeline sorts after every segment of an earlier one
    assert offsite_pitr.wal_before("0000000100000000/000000010000000000000009", "000000020000000000000006")


def test_the_wal_a_base_backup_needs_must_be_in_the_catalog():
    local = ["0000000100000000/000000010000000000000003", "0000000100000000/000000010000000000000004",
             "0000000100000000/000000010000000000000005", "00000001.history"]
    catalog = {"0000000100000000/000000010000000000000003": {}, "0000000100000000/000000010000000000000005": {}}
    missing = offsite_pitr.needed_wal(catalog, local, "000000010000000000000003", "000000010000000000000005")
    assert missing == ["000000010000000000000004"]
    catalog["0000000100000000/000000010000000000000004"] = {}
    assert offsite_pitr.needed_wal(catalog, local, "000000010000000000000003", "000000010000000000000005") == []
    assert offsite_pitr.needed_wal({}, [], "000000010000000000000007", "000000010000000000000007") == [
        "000000010000000000000007"]


def test_wal_names_are_recognised():
    for name in ("000000010000000000000003", "000000010000000000000003.00000028.backup", "00000002.history"):
        assert offsite_pitr.WAL_NAME.match(name), name
    for name in ("xlog.db", "h-off-pitr-xlog.db", "000000010000000000000003.partial", ".stackops-fetch-x"):
        assert not offsite_pitr.WAL_NAME.match(name), name


def test_wal_is_sent_once_and_never_again_below_the_retention_floor(tmp_path):
    names = ["000000010000000000000003", "000000010000000000000004", "000000010000000000000005", "00000001.history"]
    local = {}
    for name in names:
        (tmp_path / name).write_bytes(b"w" * 16)
        local[name] = str(tmp_path / name)
    plain = dict(size=16, sha256="x")
    files = {"000000010000000000000004": plain, "00000001.history": dict(plain, size=99)}
    todo, below = offsite_pitr.wal_todo(files, local, [], "000000010000000000000004")
    # 3 was deleted by retention (below the floor), 4 is there, the history file changed size, 5 is new.
    assert below == ["000000010000000000000003"]
    assert todo == ["00000001.history", "000000010000000000000005"]
    # With recipients, a plaintext copy in the catalog is replaced by ciphertext; an encrypted one is not.
    files["000000010000000000000005"] = dict(plain, size=200, encrypted=True, plaintext_size=16)
    todo, below = offsite_pitr.wal_todo(files, local, ["age1x"], None)
    assert todo == ["00000001.history", "000000010000000000000003", "000000010000000000000004"]
    # A base backup about to be copied lowers the floor to its begin_wal.
    assert offsite_pitr.wal_floor(dict(floor="000000010000000000000004"), ["000000010000000000000003"]) == \
        "000000010000000000000003"
    assert offsite_pitr.wal_floor(dict(floor="000000010000000000000004"), ["000000010000000000000009", None]) == \
        "000000010000000000000004"
    assert offsite_pitr.stored_name("a", dict(encrypted=True)) == "a.age" and offsite_pitr.stored_name("a", {}) == "a"
