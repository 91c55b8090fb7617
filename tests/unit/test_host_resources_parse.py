"""Parsing helpers of the host_resources module (pure functions, real /proc where it exists)."""
import pytest

from ansible_collections.stackops.runbooks.plugins.module_utils import health_host as host_resources


@pytest.mark.parametrize("text, expected", [
    ("769.7MB", 769700000), ("2.728kB", 2728), ("0B (0%)", 0), ("1.2GB (50%)", 1200000000), ("65B", 65),
    ("1GiB", 1024 ** 3), ("", None), ("n/a", None)])
def test_parse_size(text, expected):
    assert host_resources.parse_size(text) == expected


def test_memory_usage_prefers_memavailable():
    usage = host_resources.memory_usage({"MemTotal": 1000, "MemAvailable": 250, "MemFree": 10})
    assert usage == {"total_bytes": 1000, "available_bytes": 250, "used_percent": 75.0}
    legacy = host_resources.memory_usage({"MemTotal": 1000, "MemFree": 100, "Buffers": 50, "Cached": 50})
    assert legacy["used_percent"] == 80.0


def test_read_meminfo_in_bytes(tmp_path):
    sample = tmp_path / "meminfo"
    sample.write_text("MemTotal:       24684156 kB\nMemAvailable:   23508000 kB\nHugePages_Total:       0\n")
    values = host_resources.read_meminfo(str(sample))
    assert values["MemTotal"] == 24684156 * 1024 and values["HugePages_Total"] == 0


def test_disk_usage_of_root_matches_statvfs():
    usage = host_resources.disk_usage("/")
    assert usage["mount"] == "/" and 0 <= usage["used_percent"] <= 100
    assert usage["total_bytes"] >= usage["used_bytes"]
