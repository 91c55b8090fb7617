"""Pure logic of the warm standby (plugins/module_utils/pitr_standby.py): the delay, the delay-window check, the
replay lag, the standby's settings and what is taken out before the service runs on a promoted standby."""
import pytest

from ansible_collections.stackops.runbooks.plugins.module_utils import pitr, pitr_standby


def test_delays_read_like_postgresql_reads_them():
    assert pitr_standby.parse_delay("15min") == 900
    assert pitr_standby.parse_delay("1h") == 3600
    assert pitr_standby.parse_delay("30 s") == 30
    assert pitr_standby.parse_delay("500") == pytest.approx(0.5)  # no unit: milliseconds
    assert pitr_standby.parse_delay("0") == 0 and pitr_standby.parse_delay("") == 0
    with pytest.raises(pitr.PitrError, match="not a PostgreSQL time"):
        pitr_standby.parse_delay("a quarter hour")


def test_a_target_inside_the_window_is_usable_and_one_behind_replay_is_not():
    now = 10000.0
    assert pitr_standby.window_check(9000.0, 8000.0, now)[0] is True
    assert pitr_standby.window_check(8000.0, 8000.0, now)[0] is True
    usable, why = pitr_standby.window_check(7000.0, 8000.0, now)
    assert usable is False and "replayed up to" in why
    assert pitr_standby.window_check(11000.0, 8000.0, now)[0] is False  # in the future
    assert pitr_standby.window_check(9000.0, None, now)[0] is False  # position unknown


def test_the_replay_position_is_the_newest_of_the_seed_and_the_last_replayed_transaction():
    record = dict(seeded_at="2026-12-01T10:00:00Z")
    seed = pitr.parse_ts("2026-12-01 10:00:00+00")
    assert pitr_standby.position_in_time(record, dict(replay_time=None)) == seed
    assert pitr_standby.position_in_time(record, dict(replay_time=seed - 60)) == seed
    assert pitr_standby.position_in_time(record, dict(replay_time=seed + 60)) == seed + 60
    assert pitr_standby.position_in_time({}, dict(replay_time=None)) is None


def test_lag_in_bytes_and_seconds():
    assert pitr_standby.replay_lag("0/3000000", "0/3000000", "0/3000000", 100.0, 500.0) == (0, 0.0)
    assert pitr_standby.replay_lag("0/3000100", "0/3000100", "0/3000000", 100.0, 500.0) == (0x100, 400.0)
    # The primary gone: behind what the standby received.
    assert pitr_standby.replay_lag(None, "1/0", "0/FFFFFF00", None, 500.0) == (0x100, None)
    assert pitr_standby.replay_lag(None, None, None, None, 500.0) == (None, None)


def test_settings_quote_for_postgresql_auto_conf_and_go_again_on_promotion(tmp_path):
    (tmp_path / "postgresql.auto.conf").write_text("work_mem = '8MB'\nprimary_conninfo = 'old'\n"
                                                   "recovery_target_time = '2026-12-01'\n")
    settings = pitr_standby.standby_settings("db", 5432, "o'brien", "/data/x.pgpass", "slot_a", "15min")
    pitr_standby.rewrite_auto_conf(str(tmp_path), pitr_standby.STANDBY_KEYS + pitr.RECOVERY_KEYS, settings)
    text = (tmp_path / "postgresql.auto.conf").read_text()
    assert "primary_conninfo = 'old'" not in text and "recovery_target_time" not in text
    assert r"user=''o\\''brien''" in text  # conninfo quote, then the file's quote doubling and backslash
    assert "recovery_min_apply_delay = '15min'" in text and "primary_slot_name = 'slot_a'" in text
    for name in (pitr_standby.PASSFILE, "standby.signal"):
        (tmp_path / name).write_text("x")
    pitr_standby.finish_promoted(str(tmp_path))
    assert (tmp_path / "postgresql.auto.conf").read_text() == "work_mem = '8MB'\n"
    assert not (tmp_path / pitr_standby.PASSFILE).exists() and not (tmp_path / "standby.signal").exists()


def test_problem_sentences_say_what_to_do():
    assert pitr_standby.standby_problem(None) is None
    found = dict(container="c", healthy=False, state="exited", in_recovery=None, receiver=None)
    assert "is exited" in pitr_standby.standby_problem(found) and "pitr enable" in pitr_standby.standby_problem(found)
    found.update(state="running", in_recovery=True, receiver="waiting")
    assert "not streaming" in pitr_standby.standby_problem(found)
