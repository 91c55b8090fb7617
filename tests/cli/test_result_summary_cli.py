"""The real `stackops backup` prints its own short summary, not the result document (docs/cli.md, "Output")."""
import json

from support.backup import create_db
from support.cli import stackops
from support.inventory import host_inventory

REPR_MARKS = ("[{'", "{'", "['")


def test_backup_ends_with_its_summary_and_json_keeps_everything(pg_cluster, tmp_path):
    create_db(pg_cluster, "cli_summary")
    backup_dir = tmp_path / "backups"
    inventory = host_inventory(tmp_path, pg_cluster, "summary", backup_dir, "cli_summary")
    state = tmp_path / "state"

    completed = stackops("backup", "-i", inventory, state_dir=state)
    out = completed.stdout
    assert completed.returncode == 0, out + completed.stderr
    found = [mark for mark in REPR_MARKS if mark in out]
    assert not found, "a Python repr (%s) in the output:\n%s" % (found, out)
    summary_lines = [line for line in out.splitlines() if line.startswith("backup cli_summary-")]
    assert len(summary_lines) == 1, out
    assert " of cli_summary on node-summary: " in summary_lines[0] and " rows, took " in summary_lines[0], out
    assert "  verified in " in out and "SUCCESSFUL  backup" in out
    # The generic `key = value` dump is gone; the progress line hides ansible's argument checks and guesses no total.
    assert "result node-summary" not in out and "backup_dir = " not in out
    assert "Validating arguments" not in out
    progress = [line for line in out.splitlines() if line.startswith("[")]
    assert progress and all(line.startswith("[%d/?] " % number) for number, line in enumerate(progress, 1)), out

    # --json is the complete document; -v adds the whole result as an outline, still without a repr.
    document = json.loads(stackops("backups", "-i", inventory, "--json", state_dir=state).stdout)
    assert document["result"]["node-summary"]["backups"][0]["id"] in summary_lines[0]
    verbose = stackops("backups", "-i", inventory, "-v", state_dir=state).stdout
    assert "result node-summary:" in verbose and "  backups:" in verbose
    assert not [mark for mark in REPR_MARKS if mark in verbose], verbose
