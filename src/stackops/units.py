"""Durations, sizes and values for people: one parser and one formatter each, used by the CLI and the report."""
import re

DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw]?)\s*$", re.IGNORECASE)
UNIT_SECONDS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_duration(text):
    """'24h', '90m', '2d', '3600' (seconds) -> seconds as float. ValueError when malformed or not positive."""
    match = DURATION.match(str(text or ""))
    if not match:
        raise ValueError("%r is not a duration such as 30m, 24h, 2d or 3600" % (text,))
    seconds = float(match.group(1)) * UNIT_SECONDS[match.group(2).lower()]
    if seconds <= 0:
        raise ValueError("duration %r must be positive" % (text,))
    return seconds


def human_duration(seconds):
    if seconds is None:
        return "-"
    seconds = float(seconds)
    if seconds < 60:
        return "%.1fs" % seconds
    if seconds < 3600:
        return "%dm%02ds" % divmod(int(round(seconds)), 60)
    if seconds < 86400:
        hours, rest = divmod(int(round(seconds)), 3600)
        return "%dh%02dm" % (hours, rest // 60)
    days, rest = divmod(int(round(seconds)), 86400)
    return "%dd%02dh" % (days, rest // 3600)


def human_bytes(size):
    if size is None:
        return "-"
    try:
        size = float(size)
    except (TypeError, ValueError):
        return str(size)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(size) < 1024 or unit == "TiB":
            return ("%d %s" % (size, unit)) if unit == "B" else ("%.1f %s" % (size, unit))
        size /= 1024.0
    return "%.1f TiB" % size


def plain(value):
    """One line of text for any value of a result (a list or dict as words, never a Python repr)."""
    if isinstance(value, dict):
        return ", ".join("%s %s" % (key, plain(inner)) for key, inner in value.items()) or "-"
    if isinstance(value, (list, tuple)):
        return ", ".join(plain(item) for item in value) or "-"
    return "-" if value is None else str(value)
