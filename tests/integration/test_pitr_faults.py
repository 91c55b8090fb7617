"""Point-in-time recovery under crash and disk faults (issue 14), through `stackops` against real PostgreSQL in
compose and real Barman (docs/pitr.md, "Failure modes").

One isolated copy of examples/stack (project h-pitr-faults) with its Barman home on a small tmpfs mounted by the
test: the WAL receiver is killed with SIGKILL while a writer commits, the archive disk is filled while a writer
commits, and a recovery is killed with SIGKILL twice (mid-copy and with its scratch container running). Each time
the committed rows must all come back and the live database must stay as it was.
"""
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import psycopg
import pytest

from support.ports import port, project
from support.runner import OUTPUT
from support.stack import TestStack

PROJECT = project("h-pitr-faults")
STACKOPS = Path(sys.executable).with_name("stackops")
BARMAN = Path(sys.executable).with_name("barman")
ARCHIVE_DISK_BYTES = 512 * 1024 * 1024
SEGMENT = 16 * 1024 * 1024


def mounted(path):
    with open("/proc/self/mounts") as handle:
        return any(line.split()[1] == str(path) for line in handle)


def unmount(path):
    for args in (["umount", str(path)], ["umount", "-l", str(path)]):
        if not mounted(path):
            return
        subprocess.run(args, capture_output=True, check=False)
    assert not mounted(path), "could not unmount %s" % path


def labelled_volumes():
    out = subprocess.run(["docker", "volume", "ls", "-q", "--filter", "label=stackops.pitr.server=%s" % PROJECT],
                         capture_output=True, text=True, check=True).stdout
    return set(out.split())


@pytest.fixture(scope="module")
def faults(docker_engine):
    stack = TestStack(project=PROJECT, postgres_port=port(56620), frontend_port=port(56621))
    stack.write_config()
    stack.state = OUTPUT / ("state-%s" % PROJECT)
    stack.pitr_dir = OUTPUT / "backups" / ("%s-pitr" % PROJECT)
    # The server's Barman home (base backups, WAL archive, streamed segments) gets its own small filesystem.
    stack.archive = stack.pitr_dir / "home" / PROJECT

    def teardown():
        stop_receiver(stack)
        stack.down()
        subprocess.run(["docker", "rm", "-f", "stackops-pitr-check-%s" % PROJECT], capture_output=True, check=False)
        for name in labelled_volumes():
            subprocess.run(["docker", "volume", "rm", "-f", name], capture_output=True, check=False)
        unmount(stack.archive)
        shutil.rmtree(stack.pitr_dir, ignore_errors=True)

    teardown()
    shutil.rmtree(stack.state, ignore_errors=True)
    try:
        stack.up("postgres")
        stack.archive.mkdir(parents=True)
        subprocess.run(["mount", "-t", "tmpfs", "-o", "size=%d,mode=0700" % ARCHIVE_DISK_BYTES, "h-pitr-faults",
                        str(stack.archive)], check=True, capture_output=True)
        stackops(stack, "pitr", "enable", "--yes")
        with connect(stack) as conn:
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


def stop_receiver(stack):
    if (stack.pitr_dir / "barman.conf").exists():
        subprocess.run([str(BARMAN), "-c", str(stack.pitr_dir / "barman.conf"), "receive-wal", "--stop", PROJECT],
                       capture_output=True, check=False)


def stackops(stack, *args, ok=True, timeout=400):
    env = dict(os.environ, STACKOPS_STATE_DIR=str(stack.state), COLUMNS="160", NO_COLOR="1")
    completed = subprocess.run(
        [str(STACKOPS)] + list(args) + ["-i", str(stack.inventory), "--json", "-e", "stackops_pitr_cron_file=",
                                        # One base backup for the whole file: every recovery replays from it.
                                        "-e", "stackops_pitr_backup_after_restore=false"],
        capture_output=True, text=True, timeout=timeout, env=env, stdin=subprocess.DEVNULL)
    try:
        summary = json.loads(completed.stdout)
    except ValueError:
        pytest.fail("stackops %s printed no JSON (rc %s): %s %s" % (" ".join(args), completed.returncode,
                                                                    completed.stdout[-2000:], completed.stderr[-2000:]))
    if ok:
        assert completed.returncode == 0, "stackops %s failed: %s; failed tasks: %s" % (
            " ".join(args), summary.get("error"), json.dumps(summary.get("failed_tasks"))[:3000])
    else:
        assert completed.returncode != 0, "stackops %s succeeded, it should have failed" % " ".join(args)
    return summary, summary.get("result", {}).get(PROJECT, {})


def connect(stack):
    return psycopg.connect(host="127.0.0.1", port=stack.postgres_port, user="app", password=stack.password,
                           dbname="appdb", autocommit=True, connect_timeout=5)


def ids(stack):
    with connect(stack) as conn:
        return [row[0] for row in conn.execute("SELECT id FROM writes ORDER BY id")]


def scalar(stack, query):
    with connect(stack) as conn:
        return conn.execute(query).fetchone()[0]


class Writer(threading.Thread):
    """Commits one row per transaction; remembers every id whose COMMIT returned."""

    def __init__(self, stack):
        super().__init__(daemon=True)
        self.stack = stack
        self.committed = []
        self.stop = threading.Event()
        self.error = None

    def run(self):
        try:
            with connect(self.stack) as conn:
                while not self.stop.is_set():
                    self.committed.append(conn.execute("INSERT INTO writes DEFAULT VALUES RETURNING id").fetchone()[0])
                    time.sleep(0.002)
        except psycopg.Error as exc:
            self.error = exc

    def halt(self, killed=False):
        self.stop.set()
        self.join(30)
        if not killed:
            assert self.error is None, "the database stopped serving the writer: %s" % self.error


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


def wait_for(predicate, what, timeout=60):
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            pytest.fail("timed out after %ss waiting for %s" % (timeout, what))
        time.sleep(0.1)


def slot_active(stack):
    return scalar(stack, "SELECT coalesce(bool_or(active), false) FROM pg_replication_slots "
                         "WHERE slot_name = 'stackops_pitr'")


def retained(stack):
    return scalar(stack, "SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), restart_lsn)::bigint FROM "
                         "pg_replication_slots WHERE slot_name = 'stackops_pitr'")


def test_killed_receiver_leaves_no_gap(faults):
    writer = Writer(faults)
    writer.start()
    time.sleep(1)
    pids = receiver_pids(faults)
    assert len(pids) == 2, pids
    for pid in pids:
        os.kill(pid, signal.SIGKILL)
    wait_for(lambda: not receiver_pids(faults) and not slot_active(faults), "the receiver to be gone")
    during = len(writer.committed)
    dummy, status = stackops(faults, "pitr", "status")
    assert status["receiver_alive"] is False and status["status"] == "warning"
    assert any("not running" in text and "stackops pitr enable" in text for text in status["problems"]), status
    assert len(writer.committed) > during  # the database keeps committing without its receiver
    assert retained(faults) > 0  # ... and the slot keeps that WAL for it
    dummy, enabled = stackops(faults, "pitr", "enable", "--yes")
    assert enabled["changes"] == ["start the WAL receiver (barman cron, receive-wal %s)" % PROJECT]
    assert enabled["receiver_alive"] is True
    time.sleep(1)
    writer.halt()
    before = ids(faults)
    assert set(writer.committed) <= set(before)
    dummy, result = stackops(faults, "restore", "--to-latest", "--yes")
    assert result["swapped"] is True
    assert ids(faults) == before, "rows committed while the receiver was dead did not come back"


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


def test_full_archive_disk_is_reported_and_caught_up(faults):
    writer = Writer(faults)
    writer.start()
    filler = faults.archive / "filler"
    try:
        free = os.statvfs(faults.archive).f_bavail * os.statvfs(faults.archive).f_frsize
        with open(filler, "wb") as handle:
            os.posix_fallocate(handle.fileno(), 0, free - 4 * 1024 * 1024)
        # The next segment does not fit: the receiver stops as soon as the server switches to it.
        scalar(faults, "SELECT pg_switch_wal()::text")
        wait_for(lambda: not receiver_pids(faults), "the receiver to stop on the full disk")
        during = len(writer.committed)
        dummy, status = stackops(faults, "pitr", "status")
        assert status["receiver_alive"] is False and status["status"] == "warning"
        disk = status["archive_disk"]
        assert disk["full"] is True and disk["path"] == str(faults.archive) and disk["free_bytes"] < SEGMENT
        assert "No space left on device" in status["receiver_error"]
        assert any(str(faults.archive) in text and "full" in text and "%d bytes free" % disk["free_bytes"] in text
                   and "free space there" in text for text in status["problems"]), status["problems"]
        summary, dummy = stackops(faults, "pitr", "enable", "--yes", ok=False)
        message = json.dumps(summary.get("failed_tasks"))
        assert "is full" in message and str(faults.archive) in message, message
        assert len(writer.committed) > during  # the database keeps serving
        assert retained(faults) > 0  # the slot holds what the receiver could not take
    finally:
        filler.unlink(missing_ok=True)
    dummy, enabled = stackops(faults, "pitr", "enable", "--yes")
    assert enabled["receiver_alive"] is True
    writer.halt()
    with connect(faults) as conn:
        timeline = conn.execute("SELECT timeline_id FROM pg_control_checkpoint()").fetchone()[0]
        current = segment_name(timeline, conn.execute("SELECT pg_current_wal_insert_lsn()::text").fetchone()[0])
    first = segment_name(faults.base_backup["timeline"], faults.base_backup["begin_lsn"])
    assert timeline == faults.base_backup["timeline"]  # recoveries to latest replay, they do not fork
    wait_for(lambda: current in segments(faults), "the receiver to catch up to segment %s" % current)
    wanted = ["%s%08X%08X" % (current[:8], segno // PER_ID, segno % PER_ID)
              for segno in range(segno_of(first), segno_of(current) + 1)]
    assert [name for name in wanted if name not in segments(faults)] == [], "the WAL archive has a gap"
    faults.rows_after_full_disk = ids(faults)


def running_module(name, timeout=180):
    """The pid of the AnsiballZ process of module ``name`` once it has stopped itself at its fault point."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                argv = (entry / "cmdline").read_bytes()
                state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
            except (OSError, IndexError):
                continue
            if ("AnsiballZ_%s.py" % name).encode() in argv and state == "T":
                return int(entry.name)
        time.sleep(0.05)
    pytest.fail("module %s never reached its fault point" % name)


def descendants(pid):
    children = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(entry.name))
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        todo.extend(children.get(current, []))
    return found


def killed_restore(stack, fault):
    """`stackops restore --to-latest --yes` stopped at fault point ``fault``, then every process it started (the
    CLI's process group and ansible's own sessions) killed with SIGKILL at once."""
    env = dict(os.environ, STACKOPS_STATE_DIR=str(stack.state), STACKOPS_FAULT_PAUSE=fault, NO_COLOR="1")
    cli = subprocess.Popen([str(STACKOPS), "restore", "--to-latest", "--yes", "-i", str(stack.inventory), "--json",
                            "-e", "stackops_pitr_cron_file="], stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL, env=env, start_new_session=True)
    try:
        module = running_module("pg_pitr_restore")
        tree = descendants(cli.pid)
        assert module in tree
        groups = {os.getpgid(pid) for pid in tree if os.path.exists("/proc/%d" % pid)}
        for group in groups:
            os.killpg(group, signal.SIGKILL)
        for pid in tree:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
    finally:
        cli.kill()
        cli.wait(30)
    wait_for(lambda: not os.path.exists("/proc/%d" % module), "the module to die")


def live_state(stack):
    container = stack.compose("ps", "-q", "postgres").stdout.strip()
    inspect = json.loads(subprocess.run(["docker", "inspect", container], capture_output=True, text=True,
                                        check=True).stdout)[0]
    mounts = sorted((m.get("Name") or m["Source"], m["Destination"]) for m in inspect["Mounts"])
    return dict(container=container, running=inspect["State"]["Running"],
                health=inspect["State"].get("Health", {}).get("Status"), mounts=mounts)


def swapped_out(stack):
    try:
        return {entry["previous_data"] for entry in json.loads((stack.pitr_dir / "swaps.json").read_text())}
    except FileNotFoundError:
        return set()


def test_interrupted_recovery_leaves_the_live_database_untouched(faults):
    before_rows = ids(faults)
    before = live_state(faults)
    assert before["running"] and before["health"] == "healthy"
    kept = labelled_volumes()
    assert kept <= swapped_out(faults)  # nothing but data from before earlier swaps

    killed_restore(faults, "pitr-recover-copy")
    first = labelled_volumes() - kept
    assert len(first) == 1, first  # the killed run's half-made recovery
    killed_restore(faults, "pitr-scratch")  # this run removed the first one, then was killed with a check running
    second = labelled_volumes() - kept
    assert len(second) == 1 and second != first, (first, second)
    scratch = subprocess.run(["docker", "ps", "-q", "--filter", "name=stackops-pitr-check-%s" % PROJECT],
                             capture_output=True, text=True, check=True).stdout.split()
    assert len(scratch) == 1  # still running on the orphaned volume

    assert live_state(faults) == before
    assert ids(faults) == before_rows
    assert scalar(faults, "SELECT count(*) FROM pg_replication_slots WHERE slot_name = 'stackops_pitr'") == 1

    dummy, result = stackops(faults, "restore", "--to-latest", "--yes")
    assert result["swapped"] is True
    cleaned = "\n".join(result["cleaned_up"])
    assert "remove scratch container stackops-pitr-check-%s" % PROJECT in cleaned, cleaned
    assert "remove volume %s" % next(iter(second)) in cleaned, cleaned
    assert labelled_volumes() == kept | {result["recovered_volume"]}
    assert labelled_volumes() <= swapped_out(faults)
    assert not [name for name in os.listdir(faults.pitr_dir / "staging") if name.startswith("barman-")]
    assert not (faults.pitr_dir / "recovery.json").exists()
    # Recovered to latest from the WAL archive: every row, including those written while its disk was full.
    assert ids(faults) == before_rows
    assert before_rows == getattr(faults, "rows_after_full_disk", before_rows)


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
    assert status["synchronous"] is True
    assert any(text.startswith("commits are waiting") for text in status["problems"]), status["problems"]
    dummy, enabled = stackops(faults, "pitr", "enable", "--yes", *sync)
    # Restarted the way cron would: Barman itself starts pg_receivewal --synchronous again.
    assert enabled["changes"] == ["start the WAL receiver (barman cron, receive-wal %s)" % PROJECT]
    writer = Writer(faults)
    writer.start()
    time.sleep(2)
    faults.compose("kill", "postgres")
    writer.halt(killed=True)
    faults.compose("rm", "-f", "postgres")
    subprocess.run(["docker", "volume", "rm", "%s_pgdata" % PROJECT], check=True, capture_output=True)
    assert len(writer.committed) > 0
    dummy, result = stackops(faults, "restore", "--to-latest", "--yes", *sync)
    assert result["swapped"] is True
    recovered = set(ids(faults))
    lost = [row for row in writer.committed if row not in recovered]
    assert lost == [], "synchronous receiving lost %d of %d committed rows" % (len(lost), len(writer.committed))
    assert scalar(faults, "SHOW synchronous_standby_names") == '"barman_receive_wal"'  # on again after the swap
    dummy, disabled = stackops(faults, "pitr", "disable")
    assert any("reset synchronous_standby_names" in change for change in disabled["changes"]), disabled["changes"]
    assert scalar(faults, "SHOW synchronous_standby_names") == ""
    assert scalar(faults, "SELECT count(*) FROM pg_replication_slots") == 0
    with connect(faults) as conn:  # commits no longer wait for anyone
        conn.execute("SET statement_timeout = '10s'")
        conn.execute("INSERT INTO writes DEFAULT VALUES")
