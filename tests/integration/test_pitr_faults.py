"""Point-in-time recovery under crash and disk faults (issue 14), through `stackops` against real PostgreSQL in
compose and real Barman (docs/pitr.md, "Failure modes").

One isolated copy of examples/stack (project h-pitr-faults) with its Barman home on a small tmpfs mounted by the
test: the WAL receiver is killed with SIGKILL while a writer commits (and `pitr status` pages a real HTTP receiver),
the archive disk is filled while a writer commits, a recovery is killed with SIGKILL three times (mid-copy, with its
scratch container running, and in its swap), a swap fails after the service was stopped, targets outside the window
and a scratch cluster that cannot start are refused, a verification is killed, and a swap onto data the service
cannot start on is undone. Each time the committed rows must all come back, or the live database must stay as it
was. Synchronous receiving loses no commit when the database and its volume are lost.
"""
import json
import os
import re
import shutil
import signal
import subprocess
from pathlib import Path

import pytest

from support.cli import procedure
from support.pitr import (
    BARMAN, NO_CRON, Writer, clean_up, dump, killed_run, labelled_volumes, result_of, scratch_containers, wait_for,
    write_ids)
from support.ports import port, project
from support.runner import OUTPUT
from support.stack import TestStack
from support.receiver import Receiver

PROJECT = project("h-pitr-faults")
ARCHIVE_DISK_BYTES = 512 * 1024 * 1024
SEGMENT = 16 * 1024 * 1024
RECEIVER = port(56622)  # the HTTP receiver a PITR outage pages


def mounted(path):
    with open("/proc/self/mounts") as handle:
        return any(line.split()[1] == str(path) for line in handle)


def unmount(path):
    for args in (["umount", str(path)], ["umount", "-l", str(path)]):
        if not mounted(path):
            return
        subprocess.run(args, capture_output=True, check=False)
    assert not mounted(path), "could not unmount %s" % path


@pytest.fixture(scope="module")
def faults(docker_engine):
    stack = TestStack(project=PROJECT, postgres_port=port(56620), frontend_port=port(56621))
    stack.write_config()
    stack.state = OUTPUT / ("state-%s" % PROJECT)
    stack.pitr_dir = OUTPUT / "backups" / ("%s-pitr" % PROJECT)
    # The server's Barman home (base backups, WAL archive, streamed segments) gets its own small filesystem.
    stack.archive = stack.pitr_dir / "home" / PROJECT

    def teardown():
        stack.down()
        unmount(stack.archive)
        clean_up(PROJECT, stack.pitr_dir)

    teardown()
    shutil.rmtree(stack.state, ignore_errors=True)
    try:
        stack.up("postgres")
        stack.archive.mkdir(parents=True)
        subprocess.run(["mount", "-t", "tmpfs", "-o", "size=%d,mode=0700" % ARCHIVE_DISK_BYTES, "h-pitr-faults",
                        str(stack.archive)], check=True, capture_output=True)
        stackops(stack, "pitr", "enable", "--yes")
        with stack.connect() as conn:
            conn.execute("CREATE TABLE writes (id bigserial PRIMARY KEY, at timestamptz DEFAULT clock_timestamp())")
            conn.execute("INSERT INTO writes SELECT FROM generate_series(1, 1000)")
        dummy, backup = stackops(stack, "backup", "--physical")
        assert backup["backup"]["verified"] is True
        stack.base_backup = backup["backup"]
        yield stack
    finally:
        if os.environ.get("STACKOPS_KEEP_STACK") != "1":
            teardown()
        else:
            unmount(stack.archive)


def stackops(stack, *args, ok=True):
    # One base backup for the whole file: every recovery replays from it.
    summary = procedure(*args, *NO_CRON, "-e", "stackops_pitr_backup_after_restore=false", inventory=stack.inventory,
                        state_dir=stack.state, ok=ok)
    if not ok:
        assert summary["_run"].returncode != 0, "stackops %s succeeded, it should have failed" % " ".join(args)
    return summary, result_of(summary, PROJECT)


def scalar(stack, query):
    with stack.connect() as conn:
        return conn.execute(query).fetchone()[0]


WRITERS = []


def writer(stack):
    WRITERS.append(Writer(lambda: stack.connect(), "INSERT INTO writes DEFAULT VALUES RETURNING id"))
    return WRITERS[-1]


@pytest.fixture(autouse=True)
def no_writer_outlives_its_test():
    """A test that fails half-way must not leave its writer committing: the next tests compare rows."""
    yield
    while WRITERS:
        WRITERS.pop().halt(killed=True)


def receiver_pids(stack):
    """Barman's receive-wal of this server and its pg_receivewal child."""
    conf, streaming = str(stack.pitr_dir / "barman.conf"), str(stack.archive / "streaming")
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                argv = (entry / "cmdline").read_bytes().decode(errors="replace").split("\0")
            except OSError:
                continue
            if (conf in argv and "receive-wal" in argv) or (argv[0].endswith("pg_receivewal")
                                                            and "--directory=%s" % streaming in argv):
                pids.append(int(entry.name))
    return pids


def slot_active(stack):
    return scalar(stack, "SELECT coalesce(bool_or(active), false) FROM pg_replication_slots "
                         "WHERE slot_name = 'stackops_pitr'")


def retained(stack):
    return scalar(stack, "SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), restart_lsn)::bigint FROM "
                         "pg_replication_slots WHERE slot_name = 'stackops_pitr'")


def timeline(stack):
    return scalar(stack, "SELECT timeline_id FROM pg_control_checkpoint()")


def test_killed_receiver_leaves_no_gap_and_pages(faults):
    """The receiver killed while a writer commits: `pitr status` pages (a real HTTP receiver gets the failure with the
    advice), the slot keeps the WAL, and a recovery to latest, onto a new timeline, brings every committed row back."""
    writes = writer(faults)
    writes.start()
    writes.wait_for_commits(50)
    pids = receiver_pids(faults)
    assert len(pids) == 2, pids
    for pid in pids:
        os.kill(pid, signal.SIGKILL)
    wait_for(lambda: not receiver_pids(faults) and not slot_active(faults), "the receiver to be gone")
    with Receiver(RECEIVER) as hook:
        dummy, status = stackops(faults, "pitr", "status", "-e",
                                 "stackops_notify_webhook_url=http://127.0.0.1:%d/hook" % RECEIVER)
    assert status["receiver_alive"] is False and status["status"] == "critical", dump(status)
    advice = [text for text in status["problems"] if "not running" in text and "stackops pitr enable" in text]
    assert advice, status
    pages = [json.loads(body) for method, path, body in hook.requests if method == "POST" and path == "/hook"]
    assert [page["event"] for page in pages] == ["failure"], pages
    assert pages[0]["procedure"] == "pitr" and advice[0] in pages[0]["stackops_result"]["error"], pages
    writes.wait_for_commits(50, "the database to keep committing without its receiver")
    assert retained(faults) > 0  # ... and the slot keeps that WAL for it
    dummy, enabled = stackops(faults, "pitr", "enable", "--yes")
    assert enabled["changes"] == ["start the WAL receiver (barman cron, receive-wal %s)" % PROJECT]
    assert enabled["receiver_alive"] is True
    writes.wait_for_commits(50)
    writes.halt()
    before = write_ids(faults)
    assert set(writes.committed) <= set(before)
    dummy, result = stackops(faults, "restore", "--to-latest", "--yes")
    assert result["swapped"] is True
    assert write_ids(faults) == before, "rows committed while the receiver was dead did not come back"
    # Archive recovery ending in promotion: the old server's later WAL cannot collide with the new one's.
    assert timeline(faults) > faults.base_backup["timeline"]
    listing = faults.compose("exec", "-T", "postgres", "sh", "-c", 'ls -a "$PGDATA"').stdout.split()
    assert "PG_VERSION" in listing and "barman_wal" not in listing  # it would ride along in every base backup


def segments(stack):
    """Every WAL segment the archive holds (archived, streamed complete, or the .partial being received)."""
    names = set()
    for root, dummy, files in os.walk(stack.archive):
        if Path(root).name == "streaming" or Path(root).parent.name == "wals":
            names.update(name[:24] for name in files if re.match(r"^[0-9A-F]{24}(\.partial)?$", name))
    return names


PER_ID = 0x100000000 // SEGMENT


def segno_of(name):
    return int(name[8:16], 16) * PER_ID + int(name[16:], 16)


def segment_name(timeline, lsn):
    high, low = (int(part, 16) for part in lsn.split("/"))
    return "%08X%08X%08X" % (timeline, high, low // SEGMENT)


def fork_point(stack, tli):
    """Where timeline ``tli`` begins: the switch point in its history file (pg_receivewal fetched it)."""
    for root, dummy, files in os.walk(stack.archive):
        if "%08X.history" % tli in files:
            return (Path(root) / ("%08X.history" % tli)).read_text().split("\n")[-2].split()[1]
    pytest.fail("timeline %d has no history file in the archive" % tli)


def test_full_archive_disk_is_reported_and_caught_up(faults):
    writes = writer(faults)
    writes.start()
    filler = faults.archive / "filler"
    try:
        free = os.statvfs(faults.archive).f_bavail * os.statvfs(faults.archive).f_frsize
        with open(filler, "wb") as handle:
            os.posix_fallocate(handle.fileno(), 0, free - 4 * 1024 * 1024)
        # The next segment does not fit: the receiver stops as soon as the server switches to it.
        scalar(faults, "SELECT pg_switch_wal()::text")
        wait_for(lambda: not receiver_pids(faults), "the receiver to stop on the full disk")
        dummy, status = stackops(faults, "pitr", "status")
        assert status["receiver_alive"] is False and status["status"] == "critical"
        disk = status["archive_disk"]
        assert disk["full"] is True and disk["path"] == str(faults.archive) and disk["free_bytes"] < SEGMENT
        assert "No space left on device" in status["receiver_error"]
        assert any(str(faults.archive) in text and "full" in text and "%d bytes free" % disk["free_bytes"] in text
                   and "free space there" in text for text in status["problems"]), status["problems"]
        summary, dummy = stackops(faults, "pitr", "enable", "--yes", ok=False)
        message = json.dumps(summary.get("failed_tasks"))
        assert "is full" in message and str(faults.archive) in message, message
        writes.wait_for_commits(50, "the database to keep serving with the archive disk full")
        assert retained(faults) > 0  # the slot holds what the receiver could not take
    finally:
        filler.unlink(missing_ok=True)
    dummy, enabled = stackops(faults, "pitr", "enable", "--yes")
    assert enabled["receiver_alive"] is True
    writes.halt()
    with faults.connect() as conn:
        tli = conn.execute("SELECT timeline_id FROM pg_control_checkpoint()").fetchone()[0]
        current = segment_name(tli, conn.execute("SELECT pg_current_wal_insert_lsn()::text").fetchone()[0])
    assert tli > faults.base_backup["timeline"]  # the recovery to latest of the first test forked
    # The archive holds the timeline from its very first segment (the recovered cluster's slot reserved it), so a
    # recovery from the base backup of the old timeline can cross the fork.
    first = segment_name(tli, fork_point(faults, tli))
    wait_for(lambda: current in segments(faults), "the receiver to catch up to segment %s" % current)
    wanted = ["%s%08X%08X" % (current[:8], segno // PER_ID, segno % PER_ID)
              for segno in range(segno_of(first), segno_of(current) + 1)]
    assert [name for name in wanted if name not in segments(faults)] == [], "the WAL archive has a gap"
    faults.rows_after_full_disk = write_ids(faults)


def live_state(stack):
    container = stack.compose("ps", "-q", "postgres").stdout.strip()
    inspect = json.loads(subprocess.run(["docker", "inspect", container], capture_output=True, text=True,
                                        check=True).stdout)[0]
    mounts = sorted((m.get("Name") or m["Source"], m["Destination"]) for m in inspect["Mounts"])
    return dict(container=container, running=inspect["State"]["Running"],
                health=inspect["State"].get("Health", {}).get("Status"), mounts=mounts)


def swaps(stack):
    try:
        return json.loads((stack.pitr_dir / "swaps.json").read_text())
    except FileNotFoundError:
        return []


def swapped_out(stack):
    return {entry["previous_data"] for entry in swaps(stack)}


def restore_args(stack):
    return ["restore", "--to-latest", "--yes", "-i", stack.inventory, "--json", *NO_CRON]


def test_interrupted_recovery_leaves_the_live_database_untouched(faults):
    before_rows = write_ids(faults)
    before = live_state(faults)
    assert before["running"] and before["health"] == "healthy"
    kept = labelled_volumes(PROJECT)
    assert kept <= swapped_out(faults)  # nothing but data from before earlier swaps

    killed_run(restore_args(faults), "pg_pitr_restore", "pitr-recover-copy", faults.state)
    first = labelled_volumes(PROJECT) - kept
    assert len(first) == 1, first  # the killed run's half-made recovery
    killed_run(restore_args(faults), "pg_pitr_restore", "pitr-scratch", faults.state)
    # This run removed the first one, then was killed with a check running.
    second = labelled_volumes(PROJECT) - kept
    assert len(second) == 1 and second != first, (first, second)
    assert scratch_containers(PROJECT) == ["stackops-pitr-check-%s" % PROJECT]  # still running on the orphan

    assert live_state(faults) == before
    assert write_ids(faults) == before_rows
    assert scalar(faults, "SELECT count(*) FROM pg_replication_slots WHERE slot_name = 'stackops_pitr'") == 1

    dummy, result = stackops(faults, "restore", "--to-latest", "--yes")
    assert result["swapped"] is True
    cleaned = "\n".join(result["cleaned_up"])
    assert "remove scratch container stackops-pitr-check-%s" % PROJECT in cleaned, cleaned
    assert "remove volume %s" % next(iter(second)) in cleaned, cleaned
    assert labelled_volumes(PROJECT) == kept | {result["recovered_volume"]}
    assert labelled_volumes(PROJECT) <= swapped_out(faults)
    assert not [name for name in os.listdir(faults.pitr_dir / "staging") if name.startswith("barman-")]
    assert not (faults.pitr_dir / "recovery.json").exists()
    # Recovered to latest from the WAL archive: every row, including those written while its disk was full.
    assert write_ids(faults) == before_rows
    assert before_rows == faults.rows_after_full_disk


def test_recovery_killed_in_its_swap_is_recorded_and_loses_nothing(faults):
    """Killed right after the exchange, with the service stopped: the next recovery records the storage as
    interrupted (never removes it: it holds one of the two data directories) and loses no committed row."""
    before_rows = write_ids(faults)
    kept = labelled_volumes(PROJECT)
    killed_run(restore_args(faults), "pg_pitr_restore", "pitr-swap", faults.state)
    journal = json.loads((faults.pitr_dir / "recovery.json").read_text())
    assert journal["phase"] == "swap" and journal["storage"] in labelled_volumes(PROJECT) - kept, journal
    # Killed between the stop and the start: the container exists and is not running.
    assert faults.compose("ps", "-a", "--format", "{{.State}}", "postgres").stdout.strip() == "exited"

    dummy, result = stackops(faults, "restore", "--to-latest", "--yes")
    assert result["swapped"] is True
    assert any(line.startswith("kept %s" % journal["storage"]) for line in result["cleaned_up"]), result["cleaned_up"]
    interrupted = [entry for entry in swaps(faults) if entry.get("interrupted")]
    assert [entry["previous_data"] for entry in interrupted] == [journal["storage"]], interrupted
    assert journal["storage"] in labelled_volumes(PROJECT)  # kept for the operator to check
    assert write_ids(faults) == before_rows


def test_failure_after_the_stop_puts_the_previous_data_back_and_starts_the_service(faults):
    """An OSError after the service was stopped and the directories exchanged (here: swaps.json cannot be written)
    undoes the exchange and starts the service on its previous data; the recovered storage is removed."""
    before_rows = write_ids(faults)
    kept = labelled_volumes(PROJECT)
    record = faults.pitr_dir / "swaps.json"
    aside = faults.pitr_dir / "swaps.json.aside"
    record.rename(aside)
    record.mkdir()  # a directory where the file goes: the rename into it fails with EISDIR
    try:
        summary, dummy = stackops(faults, "restore", "--to-latest", "--yes", ok=False)
    finally:
        record.rmdir()
        aside.rename(record)
    message = json.dumps(summary.get("failed_tasks")) + str(summary.get("error"))
    assert "the swap onto the recovered data failed" in message and "runs on its previous data again" in message
    state = live_state(faults)
    assert state["running"] and state["health"] == "healthy"
    assert write_ids(faults) == before_rows
    assert labelled_volumes(PROJECT) == kept and not (faults.pitr_dir / "recovery.json").exists()


def test_targets_outside_the_window_are_refused_before_anything_is_written(faults):
    before = live_state(faults)
    kept = labelled_volumes(PROJECT)
    early = "2000-01-01 00:00:00+00"
    summary, dummy = stackops(faults, "restore", "--to-time", early, "--yes", ok=False)
    assert "no complete base backup" in json.dumps(summary.get("failed_tasks")), dump(summary.get("failed_tasks"))
    late = "2999-01-01 00:00:00+00"
    summary, dummy = stackops(faults, "restore", "--to-time", late, "--yes", ok=False)
    assert "outside the recoverable window" in json.dumps(summary.get("failed_tasks"))
    assert labelled_volumes(PROJECT) == kept
    assert not (faults.pitr_dir / "recovery.json").exists() and scratch_containers(PROJECT) == []
    assert live_state(faults) == before


def test_a_scratch_cluster_that_fails_to_start_has_its_storage_removed(faults):
    """A restore point nobody recorded, and that is not in the WAL: recovery ends before the target and the scratch
    cluster exits. Its volume, journal and container go; the live database is untouched."""
    before, before_rows = live_state(faults), write_ids(faults)
    kept = labelled_volumes(PROJECT)
    summary, dummy = stackops(faults, "restore", "--to-restore-point", "no-such-point", "--yes", ok=False)
    message = json.dumps(summary.get("failed_tasks"))
    assert "did not come up in scratch container" in message and "recovery target" in message, message
    assert labelled_volumes(PROJECT) == kept
    assert not (faults.pitr_dir / "recovery.json").exists() and scratch_containers(PROJECT) == []
    assert live_state(faults) == before and write_ids(faults) == before_rows


def test_killed_verification_leaves_nothing_behind(faults):
    """A base backup's verification killed with its scratch container running: the next backup removes the
    container and the scratch copy of the cluster, which the journal named before they existed."""
    killed_run(["backup", "--physical", "-i", faults.inventory, "--json", *NO_CRON], "pg_pitr_backup",
               "pitr-scratch", faults.state)
    journal = json.loads((faults.pitr_dir / "verification.json").read_text())
    assert Path(journal["scratch"]).is_dir() and scratch_containers(PROJECT) == [journal["container"]], journal
    dummy, result = stackops(faults, "backup", "--physical")
    assert result["backup"]["verified"] is True, dump(result)
    cleaned = "\n".join(result["cleaned_up"])
    assert "remove scratch container %s" % journal["container"] in cleaned, cleaned
    assert "remove scratch copy %s" % journal["scratch"] in cleaned, cleaned
    assert not Path(journal["scratch"]).exists() and scratch_containers(PROJECT) == []
    assert not (faults.pitr_dir / "verification.json").exists()


def test_swap_undone_when_the_service_is_unhealthy_on_the_recovered_data(faults):
    """A base backup the service cannot start on (its listen_addresses names an address the container does not
    have; the scratch check overrides it, so it verifies): the swap is undone and the service runs on its previous
    data, every row of it."""
    with faults.connect() as conn:
        conn.execute("ALTER SYSTEM SET listen_addresses = '192.0.2.1'")  # no reload: the live server keeps '*'
    try:
        dummy, poisoned = stackops(faults, "backup", "--physical")
    finally:
        with faults.connect() as conn:
            conn.execute("ALTER SYSTEM RESET listen_addresses")
    assert poisoned["backup"]["verified"] is True
    with faults.connect() as conn:
        conn.execute("INSERT INTO writes SELECT FROM generate_series(1, 10)")
    before_rows = write_ids(faults)
    kept = labelled_volumes(PROJECT)
    try:
        summary, dummy = stackops(faults, "restore", "--to-latest", "--yes", ok=False)
        message = json.dumps(summary.get("failed_tasks"))
        assert "did not become healthy on the recovered data" in message and "swap was undone" in message, message
        state = live_state(faults)
        assert state["running"] and state["health"] == "healthy"
        assert write_ids(faults) == before_rows
        undone = [entry for entry in swaps(faults) if entry.get("undone")]
        assert len(undone) == 1 and undone[0]["previous_data"] in labelled_volumes(PROJECT) - kept, undone
    finally:
        # Later recoveries must not start from it.
        subprocess.run([str(BARMAN), "-c", str(faults.pitr_dir / "barman.conf"), "delete", PROJECT,
                        poisoned["backup_id"]], capture_output=True, check=False)


def test_synchronous_receiving_loses_no_commit(faults):
    """Opt-in synchronous mode: the database is killed and its volume removed mid-write, and not one committed row is
    lost. `disable` clears synchronous_standby_names, so commits do not wait for a receiver that is gone."""
    sync = ("-e", "stackops_pitr_synchronous=true")
    dummy, enabled = stackops(faults, "pitr", "enable", "--yes", *sync)
    assert any("synchronous_standby_names" in change for change in enabled["changes"]), enabled["changes"]
    assert enabled["receiver_alive"] is True
    assert scalar(faults, "SELECT string_agg(sync_state, ',') FROM pg_stat_replication "
                          "WHERE application_name = 'barman_receive_wal'") == "sync"
    for pid in receiver_pids(faults):
        os.kill(pid, signal.SIGKILL)
    wait_for(lambda: not receiver_pids(faults) and not slot_active(faults), "the receiver to be gone")
    dummy, status = stackops(faults, "pitr", "status")
    assert status["synchronous"] is True and status["status"] == "critical"
    assert any(text.startswith("commits are waiting") for text in status["problems"]), status["problems"]
    dummy, enabled = stackops(faults, "pitr", "enable", "--yes", *sync)
    # Restarted the way cron would: Barman itself starts pg_receivewal --synchronous again.
    assert enabled["changes"] == ["start the WAL receiver (barman cron, receive-wal %s)" % PROJECT]
    writes = writer(faults)
    writes.start()
    writes.wait_for_commits(200)
    faults.compose("kill", "postgres")
    writes.halt(killed=True)
    faults.compose("rm", "-f", "postgres")
    subprocess.run(["docker", "volume", "rm", "%s_pgdata" % PROJECT], check=True, capture_output=True)
    dummy, result = stackops(faults, "restore", "--to-latest", "--yes", *sync)
    assert result["swapped"] is True
    recovered = set(write_ids(faults))
    lost = [row for row in writes.committed if row not in recovered]
    assert lost == [], "synchronous receiving lost %d of %d committed rows" % (len(lost), len(writes.committed))
    assert scalar(faults, "SHOW synchronous_standby_names") == '"barman_receive_wal"'  # on again after the swap
    dummy, disabled = stackops(faults, "pitr", "disable")
    assert any("reset synchronous_standby_names" in change for change in disabled["changes"]), disabled["changes"]
    assert scalar(faults, "SHOW synchronous_standby_names") == ""
    assert scalar(faults, "SELECT count(*) FROM pg_replication_slots") == 0
    with faults.connect() as conn:  # commits no longer wait for anyone
        conn.execute("SET statement_timeout = '10s'")
        conn.execute("INSERT INTO writes DEFAULT VALUES")
