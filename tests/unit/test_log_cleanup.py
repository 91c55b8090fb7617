"""Which old log files host_log_cleanup removes (module_utils/log_cleanup.py), on real files in a temporary tree."""
import os

import pytest

from ansible_collections.stackops.runbooks.plugins.module_utils.log_cleanup import clean_up, old_files

NOW = 2000000000.0
DAY = 86400


def _file(path, days_old, size=10):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"x" * size)
    os.utime(path, (NOW - days_old * DAY, NOW - days_old * DAY))
    return str(path)


def test_only_old_regular_visible_files_that_match_are_chosen(tmp_path):
    old = _file(tmp_path / "app" / "api.log", 10, 100)
    nested = _file(tmp_path / "app" / "2026" / "api.log.1", 8, 50)
    _file(tmp_path / "app" / "new.log", 1)
    _file(tmp_path / "app" / "data.db", 30)
    _file(tmp_path / "app" / ".hidden.log", 30)
    os.symlink(old, str(tmp_path / "app" / "link.log"))
    files, missing = old_files([str(tmp_path / "app"), str(tmp_path / "none")], ["*.log", "*.log.*"], 7, now=NOW)
    assert files == [{"path": nested, "size": 50}, {"path": old, "size": 100}]
    assert missing == [str(tmp_path / "none")]


def test_no_pattern_matches_every_name_and_age_zero_every_file(tmp_path):
    paths = sorted([_file(tmp_path / "a.db", 0), _file(tmp_path / "b.txt", 3)])
    assert [f["path"] for f in old_files([str(tmp_path)], [], 0, now=NOW)[0]] == paths


@pytest.mark.parametrize("check", [True, False])
def test_clean_up_removes_only_outside_check_mode_and_says_what_it_reclaimed(tmp_path, check):
    old = _file(tmp_path / "old.log", 30, 2048)
    result = clean_up([str(tmp_path)], ["*.log"], 7, check=check, now=NOW)
    assert result["changed"] is True and result["removed"] == [old] and result["reclaimed_bytes"] == 2048
    assert result["reclaimed"] == "2.00 KB"
    assert result["summary"] == "%s 1 log file(s) older than 7 day(s), 2.00 KB" % ("would remove" if check else "removed")
    assert os.path.exists(old) is check
    again = clean_up([str(tmp_path)], ["*.log"], 7, now=NOW)
    assert again["changed"] is check and again["removed"] == ([old] if check else [])
