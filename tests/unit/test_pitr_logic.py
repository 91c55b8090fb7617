"""Pure logic of PITR (plugins/module_utils/pitr*.py): times, base backup choice, retention, the data mount, the
recovery's Barman options, passfile, exchange."""
import os

import pytest

from ansible_collections.stackops.runbooks.plugins.module_utils import pitr, pitr_restore, pitr_storage


def test_times_need_an_offset_and_mean_one_instant():
    assert pitr.parse_ts("2026-12-01 14:01:59+00") == pitr.parse_ts("2026-12-01T16:01:59+02:00")
    assert pitr.parse_ts("2026-12-01 14:01:59.5Z") - pitr.parse_ts("2026-12-01 14:01:59+00") == pytest.approx(0.5)
    with pytest.raises(pitr.PitrError, match="no UTC offset"):
        pitr.parse_ts("2026-12-01 14:01:59")


def _set(backup_id, end_time, end_lsn, status="DONE", verified=None):
    return dict(id=backup_id, end_time=end_time, end_lsn=end_lsn, status=status, verified=verified,
                verification_failed=verified is False)


def test_the_newest_complete_backup_before_the_target_is_chosen():
    sets = [_set("c", "2026-12-01T12:00:00Z", "0/9000000", status="FAILED"),
            _set("b", "2026-12-01T10:00:00Z", "0/5000000"), _set("a", "2026-12-01T08:00:00Z", "0/3000000")]
    assert pitr.choose_backup(sets, "time", "2026-12-01 13:00:00+00")["id"] == "b"
    assert pitr.choose_backup(sets, "time", "2026-12-01 09:00:00+00")["id"] == "a"
    assert pitr.choose_backup(sets, "time", "2026-12-01 07:00:00+00") is None
    assert pitr.choose_backup(sets, "lsn", "0/4000000")["id"] == "a"
    assert pitr.choose_backup(sets, "latest", None)["id"] == "b"


def test_verified_backups_are_preferred_and_failed_ones_never_chosen():
    sets = [_set("d", "2026-12-01T14:00:00Z", "0/B000000", verified=False),
            _set("c", "2026-12-01T12:00:00Z", "0/9000000"),
            _set("b", "2026-12-01T10:00:00Z", "0/5000000", verified=True),
            _set("a", "2026-12-01T08:00:00Z", "0/3000000")]
    assert pitr.choose_backup(sets, "latest", None)["id"] == "b"
    assert pitr.choose_backup(sets, "time", "2026-12-01 15:00:00+00")["id"] == "b"
    assert pitr.choose_backup(sets, "time", "2026-12-01 09:00:00+00")["id"] == "a"  # none verified: the newest
    assert pitr.choose_backup(sets[:1], "latest", None) is None  # only a failed one: nothing


DAY = 86400.0


def _aged(backup_id, days_ago, verified=None, now=1e9):
    return _set(backup_id, pitr.iso(now - days_ago * DAY), "0/1000000", verified=verified)


def test_retention_never_deletes_the_newest_verified_backup():
    now = 1e9
    # The newest verified one is 20 days old; everything newer was never verified or failed it.
    sets = [_aged("e", 1, now=now), _aged("d", 2, verified=False, now=now), _aged("c", 10, now=now),
            _aged("b", 20, verified=True, now=now), _aged("a", 30, verified=True, now=now)]
    assert pitr.retention_plan(sets, 7, 1, now=now) == ["a"]
    # Once a newer one is verified, the old ones go (c stays: a recovery to the window's start begins there).
    sets[0]["verified"] = True
    assert pitr.retention_plan(sets, 7, 1, now=now) == ["a", "b"]
    assert pitr.retention_plan(sets, 7, 3, now=now) == ["a"]  # the minimum counts usable backups only (not d)
    assert pitr.retention_plan(sets, 7, 4, now=now) == []


def test_every_recovery_ends_in_promotion_onto_a_new_timeline():
    def args(target, value):
        return pitr_restore.recover_args(dict(target=target, target_value=value))
    assert args("latest", None) == ["recover", "--target-action", "promote", "--target-tli", "latest"]
    assert args("time", "2026-12-01 14:00:00+00")[-2:] == ["--target-time", "2026-12-01 14:00:00+00"]
    assert args("name", "before-42")[1:3] == ["--target-action", "promote"]


def test_the_mount_holding_pgdata_is_found_for_volumes_and_binds():
    config = {"services": {"db": {"image": "postgres:15", "volumes": [
        {"type": "bind", "source": "/srv/conf", "target": "/etc/postgresql"},
        {"type": "volume", "source": "data", "target": "/var/lib/postgresql/data"}]}},
        "volumes": {"data": {"name": "shop_data"}}}
    assert pitr_storage.data_mount(config, "db", "/var/lib/postgresql/data/pgdata") == (
        "volume", "shop_data", "/var/lib/postgresql/data")
    config["services"]["db"]["volumes"] = [{"type": "bind", "source": "/srv/pg", "target": "/var/lib/postgresql"}]
    assert pitr_storage.data_mount(config, "db", "/var/lib/postgresql/data") == ("bind", "/srv/pg", "/var/lib/postgresql")
    with pytest.raises(pitr.PitrError, match="no volume or bind mount"):
        pitr_storage.data_mount({"services": {"db": {}}}, "db", "/var/lib/postgresql/data")


def test_passfile_round_trips_any_password(tmp_path):
    path = tmp_path / "pgpass"
    password = "a:b\\c"
    path.write_text(pitr.passfile_line("stackops_pitr", password))
    assert pitr.read_passfile_password(str(path), "stackops_pitr") == password
    assert pitr.read_passfile_password(str(path), "other") is None


def test_exchange_swaps_two_directories_in_one_call(tmp_path):
    first, second = tmp_path / "live", tmp_path / "recovered"
    first.mkdir()
    second.mkdir()
    (first / "old").write_text("old")
    (second / "new").write_text("new")
    pitr_storage.exchange_dirs(str(first), str(second))
    assert os.listdir(first) == ["new"] and os.listdir(second) == ["old"]


def test_recovery_settings_are_relocated_then_dropped(tmp_path):
    conf = tmp_path / "postgresql.auto.conf"
    conf.write_text("work_mem = '8MB'\nrestore_command = 'cp %s/barman_wal/%%f %%p'\n"
                    "recovery_target_time = '2026-12-01 14:00:00+00'\n" % tmp_path)
    (tmp_path / "barman_wal").mkdir()
    pitr_storage.relocate_recovery_conf(str(tmp_path), str(tmp_path), "/var/lib/postgresql/data")
    assert "cp /var/lib/postgresql/data/barman_wal/%f %p" in conf.read_text()
    pitr_storage.finish_recovered(str(tmp_path))
    assert conf.read_text() == "work_mem = '8MB'\n"
    assert not (tmp_path / "barman_wal").exists()  # it would ride along in every later base backup


def test_a_recovery_gets_every_segment_of_the_newest_timeline_and_its_ancestors(tmp_path):
    """Timeline 3 forked from 2 at a point before 2's own start (a recovery to a point before an earlier recovery's
    fork): Barman's own choice of segments leaves some of 3's out; the recovery gets all of 1's and 3's from the base
    backup's first segment on, none of 2's before it, and the history files."""
    wals = tmp_path / "home" / "s" / "wals"
    names = ["000000010000000000000003", "000000010000000000000004", "000000010000000000000006",
             "000000020000000000000005", "000000030000000000000004", "000000030000000000000006",
             "000000010000000000000002"]
    for name in names:
        (wals / name[:16]).mkdir(parents=True, exist_ok=True)
        (wals / name[:16] / name).write_text(name)
    (wals / "00000002.history").write_text("1\t0/50005D0\tafter LSN 0/50005A0\n")
    (wals / "00000003.history").write_text("1\t0/50005D0\tafter LSN 0/50005A0\n\n2\t0/40068E8\tat restore point\n")
    dest = tmp_path / "dest"
    (dest / "barman_wal").mkdir(parents=True)
    layout = pitr.Layout(str(tmp_path), "s")
    pitr_restore.add_timeline_wal(layout, str(dest), {"begin_wal": "000000010000000000000003"})
    assert set(os.listdir(dest / "barman_wal")) == {
        "00000002.history", "00000003.history", "000000010000000000000003", "000000010000000000000004",
        "000000010000000000000006", "000000020000000000000005", "000000030000000000000004",
        "000000030000000000000006"}
