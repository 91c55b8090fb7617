"""`stackops backups` for people: one table per host of the backup sets (the --json document is unchanged).

Logical sets (one database) and, with PITR set up, physical base backups (the whole cluster) share the table;
the kind column tells them apart and the footer gives the recoverable window of the physical ones.
"""
from rich.table import Table
from rich.text import Text

from .units import human_bytes, human_duration

COLUMNS = ("id", "database", "age", "size", "verified", "rows", "kind")


def _verified(value):
    if value is True:
        return Text("yes", style="green")
    if value is False:
        return Text("FAILED", style="bold red")
    return Text("never", style="yellow")


def _rows(value):
    return "-" if value is None else "{:,}".format(int(value))


def _kind(item):
    """logical or physical; a set encrypted at rest (stackops_backup_encrypt) says so."""
    return str(item.get("kind") or "logical") + (", encrypted" if item.get("encrypted") else "")


def backup_rows(listing):
    """[(id, database, age, size, verified, rows, kind)] of one host's listing, newest first as the role lists them."""
    rows = []
    for item in listing.get("backups") or []:
        rows.append((str(item.get("id") or item.get("backup_id") or "-"), str(item.get("database") or "-"),
                     human_duration(item.get("age_seconds")), human_bytes(item.get("size_bytes")),
                     _verified(item.get("verified")), _rows(item.get("rows")), _kind(item)))
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
        physical = listing.get("physical")
        if isinstance(physical, dict):
            console.print("point-in-time recovery (%s): recoverable from %s to %s; WAL receiver %s" % (
                physical.get("server") or "-", physical.get("earliest_recoverable") or "-",
                physical.get("latest_recoverable") or "-", "alive" if physical.get("receiver_alive") else "DOWN"),
                markup=False, highlight=False)
        printed = True
    return printed
