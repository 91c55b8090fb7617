"""Shared by the off-site, encryption and DR tests: module batches with the right options, key files, output."""
import subprocess

import pytest

from .backup import batch

PG_MODULES = ("pg_backup", "pg_backup_verify", "pg_backup_restore")


def run_steps(cluster, backup_dir, steps, label):
    """batch(): the PostgreSQL modules get the cluster's connection options, every step the backup_dir."""
    for item in steps:
        extra = cluster.params() if item["module"] in PG_MODULES else {}
        if item["module"] in PG_MODULES + ("offsite_copy",):
            extra.setdefault("backup_dir", str(backup_dir))
        extra.update(item["args"])
        item["args"] = extra
    return batch(steps, label=label)


def output_text(run):
    """Everything ansible-runner recorded of a run (events, stdout), without the playbook the test wrote."""
    return "\n".join(path.read_text(errors="replace") for path in (run.private_data_dir / "artifacts").rglob("*")
                     if path.is_file()) + run.stdout


def age_key(path):
    """A new age identity file; returns its public key."""
    try:
        subprocess.run(["age-keygen", "-o", str(path)], check=True, capture_output=True, text=True)
    except FileNotFoundError:
        pytest.fail("age-keygen is missing: run scripts/bootstrap.sh (Debian package age)")
    return subprocess.run(["age-keygen", "-y", str(path)], check=True, capture_output=True, text=True).stdout.strip()
