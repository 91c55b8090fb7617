"""`stackops backups` renders logical sets and physical base backups in one table, told apart by kind."""
import io

from rich.console import Console

from stackops.backups_table import COLUMNS, backup_rows, print_backups

LISTING = {
    "backup_dir": "/b", "database": "shop", "count": 2, "total_size_bytes": 5 << 20, "in_progress": [],
    "backups": [{"id": "20261201T230945", "kind": "physical", "database": "(cluster)", "age_seconds": 60,
                 "size_bytes": 4 << 20, "verified": True, "status": "DONE"},
                {"id": "shop-20261201T230935577Z", "kind": "logical", "database": "shop", "age_seconds": 75,
                 "size_bytes": 1 << 20, "verified": False, "rows": 503}],
    "physical": {"server": "h-pitr-shop", "receiver_alive": True, "earliest_recoverable": "2026-12-01T23:10:02.000000Z",
                 "latest_recoverable": "2026-12-01T23:11:00.000000Z"},
}


def test_kind_column_tells_physical_from_logical():
    assert COLUMNS[-1] == "kind"
    rows = backup_rows(LISTING)
    assert [(row[0], row[1], row[-1]) for row in rows] == [("20261201T230945", "(cluster)", "physical"),
                                                          ("shop-20261201T230935577Z", "shop", "logical")]
    assert [str(row[4]) for row in rows] == ["yes", "FAILED"]
    assert rows[0][5] == "-" and rows[1][5] == "503"  # a base backup counts no rows


def test_a_listing_without_kinds_is_all_logical():
    listing = dict(LISTING, backups=[{"id": "a-1", "database": "a", "age_seconds": 1, "size_bytes": 1}], physical=None)
    assert backup_rows(listing)[0][-1] == "logical"
    out = io.StringIO()
    assert print_backups(Console(file=out, width=200, no_color=True), {"h": listing})
    assert "point-in-time" not in out.getvalue()


def test_the_footer_gives_the_recoverable_window():
    out = io.StringIO()
    assert print_backups(Console(file=out, width=200, no_color=True), {"h-pitr-shop": LISTING})
    text = out.getvalue()
    assert "kind" in text and "physical" in text and "(cluster)" in text
    assert "2 set(s), 5.0 MiB in all" in text
    assert ("point-in-time recovery (h-pitr-shop): recoverable from 2026-12-01T23:10:02.000000Z to "
            "2026-12-01T23:11:00.000000Z; WAL receiver alive") in text
