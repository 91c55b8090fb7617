"""`stackops backups` marks a set encrypted at rest (stackops_backup_encrypt) in its kind column."""
from stackops.backups_table import backup_rows


def test_an_encrypted_set_says_so_in_its_kind():
    listing = {"backups": [
        {"id": "a-2", "database": "a", "age_seconds": 1, "size_bytes": 10, "verified": True, "encrypted": True},
        {"id": "a-1", "database": "a", "age_seconds": 2, "size_bytes": 10, "verified": True, "encrypted": False}]}
    assert [row[-1] for row in backup_rows(listing)] == ["logical, encrypted", "logical"]
