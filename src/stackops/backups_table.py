"""`stackops backups` for people: one table per host of the backup sets (the --json document is unchanged)."""
from rich.table import Table
from rich.text import Text

from .units import human_bytes, human_duration

COLUMNS = ("id", "database", "age", "size", "verified", "rows")


def _verified(value):
    if value is True:
        return Text("yes", style="green")
    if value is False:
        return Text("FAILED", style="bold red")
    return Text("never", style="yellow")


def _rows(value):
    return "-" if value is None else "{:,}".format(int(value))


def backup_rows(listing):
    """[(id, database, age, size, verified, rows)] of one host's listing, newest first as the module lists them."""
    rows = []
    for item in listing.get("backups") or []:
        rows.append((str(item.get("id") or item.get("backup_id") or "-"), str(item.get("database") or "-"),
                     human_duration(item.get("age_seconds")), human_bytes(item.get("size_bytes")),
                     _verified(item.get("verified")), _rows(item.get("rows"))))
    return rows


def print_backups(console, result):
    """The listing of every host in ``result`` ({host: stackops_result}); True when there was one to print."""
    printed = False
    for host, listing in sorted((result or {}).items()):
        if not isinstance(listing, dict) or "backups" not in listing:
            continue
        title = "backups on %s in %s" % (host, listing.get("backup_dir") or "-")
        if listing.get("database"):
            title += " (database %s)" % listing["database"]
        table = Table(title=title, title_justify="left")
        for column in COLUMNS:
            table.add_column(column, justify="right" if column in ("age", "size", "rows") else "left")
        for row in backup_rows(listing):
            table.add_row(*row)
        console.print(table)
        in_progress = listing.get("in_progress") or []
        console.print("%s set(s), %s in all%s" % (
            listing.get("count", len(listing.get("backups") or [])), human_bytes(listing.get("total_size_bytes")),
            "; in progress or left by a killed run: %s" % ", ".join(str(item) for item in in_progress) if in_progress else ""),
            markup=False, highlight=False)
        printed = True
    return printed
