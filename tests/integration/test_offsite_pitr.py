"""Physical base backups and their WAL off-site, and point-in-time recovery from remote WAL, through `stackops`:
real PostgreSQL in compose, real Barman, a real S3 server (SeaweedFS on loopback).

One isolated copy of examples/stack (project h-off-pitr): two verified `backup --physical` runs ship their base
backups and the WAL (the second only the new WAL: incremental), remote retention drops the older base backup and
the WAL before the kept one; WAL archived later is shipped on its own; then the PITR directory loses every base
backup and WAL file and `restore --to-time --from-remote` undoes a DELETE without WHERE from the remote copies.
The same copy goes to an SSH target (a real sshd on 127.0.0.1), age-encrypted, and a recovery runs from it.
"""
import io
import json
import os
import secrets
import shutil
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import psycopg
import pytest

from support.backup import batch, step
from support.offsite import age_key
from support.ports import port, port_range, project
from support.runner import OUTPUT, run_module
from support.s3server import S3Server
from support.sshd import Sshd
from support.wait import until
from support.stack import TestStack

PROJECT = project("h-off-pitr")
S3_PORT = port(56750)
SSH_PORTS = port_range(56400, 56410)
STACKOPS = Path(sys.executable).with_name("stackops")
BARMAN = Path(sys.executable).with_name("barman")


@pytest.fixture(scope="module")
def s3():
    server = S3Server(S3_PORT, "s3-secret-" + secrets.token_hex(12)).start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def pitr_stack(docker_engine, s3):
    stack = TestStack(project=PROJECT, postgres_port=port(56662), frontend_port=port(56663))
    stack.write_config()
    group_vars = stack.inventory / "group_vars" / "stacks.yml"
    variables = json.loads(group_vars.read_text())
    stack.target = dict(s3.target("site-a"), name="offsite-a", pitr_retention={"keep_last": 1})
    variables["stackops_offsite_targets"] = [stack.target]
    group_vars.write_text(json.dumps(variables, indent=2))
    stack.down()
    state = OUTPUT / ("state-%s" % PROJECT)
    pitr_dir = OUTPUT / "backups" / ("%s-pitr" % PROJECT)
    for path in (state, pitr_dir):
        shutil.rmtree(path, ignore_errors=True)
    stack.up("postgres")
    stack.state = state
    stack.pitr_dir = pitr_dir
    yield stack
    if os.environ.get("STACKOPS_KEEP_STACK") != "1":
        subprocess.run([str(BARMAN), "-c", str(pitr_dir / "barman.conf"), "receive-wal", "--stop", PROJECT],
                       capture_output=True, check=False)
        stack.down()
        for line in subprocess.run(["docker", "volume", "ls", "-q", "--filter", "label=stackops.pitr.server=%s" % PROJECT],
                                   capture_output=True, text=True).stdout.split():
            subprocess.run(["docker", "volume", "rm", "-f", line], capture_output=True)
        shutil.rmtree(pitr_dir, ignore_errors=True)


def stackops(stack, s3, *args, timeout=400):
    if not STACKOPS.exists():
        pytest.fail("%s missing: install the package (pip install -e .)" % STACKOPS)
    env = dict(os.environ, STACKOPS_STATE_DIR=str(stack.state), COLUMNS="160", NO_COLOR="1")
    completed = subprocess.run(
        [str(STACKOPS)] + list(args) + ["-i", str(stack.inventory), "--json", "-e", "stackops_pitr_cron_file=",
                                        "-e", "stackops_pitr_backup_after_restore=false"],
        capture_output=True, text=True, timeout=timeout, env=env, stdin=subprocess.DEVNULL)
    assert s3.secret_key not in completed.stdout + completed.stderr
    try:
        summary = json.loads(completed.stdout)
    except ValueError:
        pytest.fail("stackops %s printed no JSON (rc %s): %s %s" % (" ".join(args), completed.returncode,
                                                                    completed.stdout[-2000:], completed.stderr[-2000:]))
    assert completed.returncode == 0, "stackops %s failed: %s; failed tasks: %s" % (
        " ".join(args), summary.get("error"), json.dumps(summary.get("failed_tasks"))[:3000])
    return summary.get("result", {}).get(PROJECT, {})


def sql(stack, statement):
    with psycopg.connect(host="127.0.0.1", port=stack.postgres_port, user="app", password=stack.password,
                         dbname="appdb", autocommit=True, connect_timeout=5) as conn:
        cursor = conn.execute(statement)
        return cursor.fetchall() if cursor.description else None


def test_base_backups_and_wal_go_off_site_and_recover_from_remote(pitr_stack, s3):
    stack = pitr_stack
    enabled = stackops(stack, s3, "pitr", "enable", "--yes")
    assert enabled["receiver_alive"] is True
    sql(stack, "CREATE TABLE writes (id bigserial PRIMARY KEY, note text)")
    sql(stack, "INSERT INTO writes (note) SELECT 'first ' || i FROM generate_series(1, 500) AS i")

    first = stackops(stack, s3, "backup", "--physical")
    assert first["backup"]["verified"] is True
    shipped = first["offsite"][0]
    assert shipped["copied"] == [first["backup_id"]] and shipped["wal_uploaded"] >= 1
    root = "site-a/.pitr/%s/" % PROJECT
    assert root + "base/%s/stackops-copy.json" % first["backup_id"] in s3.keys(root)
    assert s3.keys(root) and not any("pgpass" in key or key.endswith(".conf") for key in s3.keys(root))

    sql(stack, "INSERT INTO writes (note) SELECT 'second ' || i FROM generate_series(1, 50) AS i")
    second = stackops(stack, s3, "backup", "--physical")
    shipped = second["offsite"][0]
    assert shipped["copied"] == [second["backup_id"]]
    assert shipped["wal_skipped"] >= first["offsite"][0]["wal_uploaded"], "WAL already off-site is sent again"
    # pitr_retention keep_last=1: the older base backup and the WAL only it needed are gone off-site, not locally.
    retention = shipped["retention"]
    assert retention["deleted"] == [first["backup_id"]] and retention["wal_deleted"] >= 1
    assert s3.keys(root + "base/%s/" % first["backup_id"]) == []
    assert shipped["latest_verified"]["id"] == second["backup_id"]
    meta = stack.pitr_dir / "home" / PROJECT / "meta"
    assert sorted(p.name for p in meta.glob("*-backup.info")) == sorted(
        "%s-backup.info" % b for b in (first["backup_id"], second["backup_id"])), "local retention is not remote's"

    # Commits after the last base backup, then the mistake; the WAL holding both is shipped on its own.
    sql(stack, "INSERT INTO writes (note) SELECT 'third ' || i FROM generate_series(1, 20) AS i")
    before = sql(stack, "SELECT id, note FROM writes ORDER BY id")
    target_time = sql(stack, "SELECT clock_timestamp()::text")[0][0]
    time.sleep(0.3)
    sql(stack, "DELETE FROM writes")
    segment = sql(stack, "SELECT pg_walfile_name(pg_current_wal_lsn())")[0][0]
    sql(stack, "SELECT pg_switch_wal()")
    # The receiver must have written the segment holding the DELETE out whole (streaming/, or already archived in
    # wals/) before a WAL-only copy can ship it.
    home = stack.pitr_dir / "home" / PROJECT
    until(lambda: [path for path in home.rglob(segment + "*") if not path.name.endswith(".partial")],
          "segment %s written out whole under %s" % (segment, home), timeout=120)
    target = dict((k, v) for k, v in stack.target.items() if k not in ("name", "pitr_retention"))

    def wal_copy():
        # Barman archives a streamed segment on its own schedule: copy again until the new WAL has gone up.
        res = run_module("stackops.runbooks.offsite_copy", dict(
            target, pitr_dir=str(stack.pitr_dir), server_name=PROJECT, base_backups="none"), label="h-off-pitr-wal")
        assert not res.get("failed"), res.get("msg")
        return res if res["wal_uploaded"] >= 1 else None
    wal_only = until(wal_copy, "a WAL-only copy that ships segment %s" % segment, timeout=180, interval=1)
    assert wal_only["copied"] == []

    # The PITR directory loses every base backup and archived WAL file (Barman's configuration stays).
    home = stack.pitr_dir / "home" / PROJECT
    for name in ("base", "meta", "wals"):
        shutil.rmtree(home / name)
    shutil.rmtree(stack.pitr_dir / "verified")

    result = stackops(stack, s3, "restore", "--to-time", target_time, "--from-remote", "--yes")
    assert result["swapped"] is True
    assert result["from_remote"]["backup_id"] == second["backup_id"] and int(result["from_remote"]["wal_downloaded"]) >= 1
    assert result["plan"]["backup"]["id"] == second["backup_id"]
    assert sql(stack, "SELECT id, note FROM writes ORDER BY id") == before
    assert (home / "base" / second["backup_id"]).is_dir()

    # A second fetch finds everything in place and matching: it downloads and changes nothing.
    again = run_module("stackops.runbooks.offsite_fetch", dict(
        target, pitr_dir=str(stack.pitr_dir), server_name=PROJECT, target="time", target_value=target_time),
        label="h-off-pitr-fetch-again")
    assert not again.get("failed"), again.get("msg")
    assert again["changed"] is False and again["wal_downloaded"] == 0 and again["downloaded_bytes"] == 0
    assert again["backup_id"] == second["backup_id"] and again["wal_present"] >= 1


# ---------------------------------------------------------------------------------------------- age, incremental

def backup_info(stack, backup_id):
    path = stack.pitr_dir / "home" / PROJECT / "meta" / ("%s-backup.info" % backup_id)
    return dict(line.split("=", 1) for line in path.read_text().splitlines() if "=" in line)


def pg_control(stack, backup_id):
    """global/pg_control out of the base backup Barman stored (a server-side zstd tar)."""
    tar = stack.pitr_dir / "home" / PROJECT / "base" / backup_id / "data" / "base.tar.zst"
    plain = subprocess.run(["zstd", "-dc", str(tar)], capture_output=True, check=True).stdout
    with tarfile.open(fileobj=io.BytesIO(plain)) as archive:
        return archive.extractfile("global/pg_control").read()


@pytest.fixture(scope="module")
def fresh_base(pitr_stack, s3):
    """A marker row in WAL that Barman archived between two verified base backups: the archive then holds WAL older
    than the newer one's begin_wal (what remote retention drops and the next copy must not send again)."""
    stack = pitr_stack
    stackops(stack, s3, "pitr", "enable", "--yes")
    if not list((stack.pitr_dir / "home" / PROJECT / "meta").glob("*-backup.info")):
        # Barman keeps WAL from its oldest base backup on: the marker's WAL must come after one.
        assert stackops(stack, s3, "backup", "--physical")["backup"]["verified"] is True
    marker = "stackops-plaintext-marker-" + secrets.token_hex(8)
    sql(stack, "CREATE TABLE IF NOT EXISTS markers (note text)")
    sql(stack, "INSERT INTO markers VALUES ('%s')" % marker)
    sql(stack, "SELECT pg_switch_wal()")
    backup = stackops(stack, s3, "backup", "--physical")
    assert backup["backup"]["verified"] is True
    return dict(backup_id=backup["backup_id"], marker=marker.encode())


def test_physical_copies_never_go_off_site_in_plaintext_when_recipients_are_set(pitr_stack, s3, fresh_base, tmp_path):
    stack, backup_id = pitr_stack, fresh_base["backup_id"]
    public, other = age_key(tmp_path / "key.txt"), age_key(tmp_path / "other.txt")
    base = s3.target("site-enc")
    common = dict(pitr_dir=str(stack.pitr_dir), server_name=PROJECT)
    results = batch([
        step("bad", "offsite_copy", age_recipients=["age1notakey"], **common, **s3.target("site-bad")),
        step("copy", "offsite_copy", age_recipients=[public], **common, **base),
    ], label="h-off-pitr-enc")
    assert results["bad"]["failed"] and "stackops_offsite_age_recipients" in results["bad"]["msg"], results["bad"]
    assert s3.keys("site-bad/") == [], "a file that could not be encrypted went up anyway"
    copy = results["copy"]
    assert not copy["failed"], copy.get("msg")
    assert copy["encrypted"] is True and copy["copied"] == [backup_id] and copy["wal_uploaded"] >= 2

    # What the host holds in plaintext: the marker row in an archived WAL segment (so its absence remotely means
    # something), the start of every base backup and WAL file, and pg_control.
    home = stack.pitr_dir / "home" / PROJECT
    local = [p for p in (home / "base" / backup_id).rglob("*") if p.is_file()]
    local += [p for p in (home / "wals").rglob("*") if p.is_file() and p.name != "xlog.db"]
    assert any(fresh_base["marker"] in p.read_bytes() for p in local if p.relative_to(home).parts[0] == "wals"), \
        "the marker row is in no archived WAL file: the plaintext check below would prove nothing"
    samples = [p.open("rb").read(256) for p in local] + [fresh_base["marker"], pg_control(stack, backup_id)[:256]]
    root = "site-enc/.pitr/%s/" % PROJECT
    readable = (root + "wal-catalog.json", root + "base/%s/stackops-copy.json" % backup_id)
    keys = s3.keys(root)
    assert set(readable) <= set(keys)
    for key in keys:
        body = s3.body(key)
        leaks = [sample[:40] for sample in samples if sample.strip(b"\0") and sample in body]
        assert not leaks, "plaintext of a local file in %s: %s" % (key, leaks)
        if key not in readable:
            assert key.endswith(".age") and body.startswith(b"age-encryption.org/v1"), key
    marker = json.loads(s3.body(readable[1]))
    assert marker["encryption"]["recipients"] == [public]
    assert all(meta["encrypted"] and meta["sha256"] != meta["plaintext_sha256"] for meta in marker["objects"].values())

    # A fetch with the identity gives back exactly the local files; without it, or with another key, nothing is
    # downloaded. The base backup and its WAL are moved away first (kept to compare with).
    begin = backup_info(stack, backup_id)["begin_wal"]
    moved = tmp_path / "moved"
    wanted = [p.relative_to(stack.pitr_dir) for p in local
              if p.relative_to(home).parts[0] == "base" or (p.parent.parent.name == "wals" and p.name[:24] >= begin)]
    wanted += [Path("home", PROJECT, "meta", "%s-backup.info" % backup_id), Path("verified", "%s.json" % backup_id)]
    for rel in wanted:
        (moved / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.move(str(stack.pitr_dir / rel), str(moved / rel))
    fetch = dict(common, target="latest", backup_id=backup_id, **base)
    results = batch([
        step("nokey", "offsite_fetch", **fetch),
        step("wrong", "offsite_fetch", age_identity_file=str(tmp_path / "other.txt"), **fetch),
        step("fetch", "offsite_fetch", age_identity_file=str(tmp_path / "key.txt"), **fetch),
    ], label="h-off-pitr-enc-fetch")
    assert results["nokey"]["failed"] and "stackops_offsite_age_identity_file" in results["nokey"]["msg"]
    assert results["wrong"]["failed"] and other in results["wrong"]["msg"], results["wrong"]["msg"]
    assert results["nokey"]["downloaded_bytes"] == 0 and results["wrong"]["downloaded_bytes"] == 0
    assert not results["fetch"]["failed"], results["fetch"].get("msg")
    assert results["fetch"]["changed"] is True and results["fetch"]["wal_downloaded"] >= 1
    differ = [str(rel) for rel in wanted if (stack.pitr_dir / rel).read_bytes() != (moved / rel).read_bytes()]
    assert not differ, "fetched files differ from the local ones: %s" % differ
    assert not list(stack.pitr_dir.rglob(".stackops-*")), "fetch or copy left scratch files behind"


def test_a_second_copy_with_no_new_wal_uploads_nothing(pitr_stack, s3, fresh_base):
    stack = pitr_stack
    target = dict(s3.target("site-inc"), pitr_dir=str(stack.pitr_dir), server_name=PROJECT,
                  retention={"keep_last": 1})
    first = run_module("stackops.runbooks.offsite_copy", target, label="h-off-pitr-inc-1")
    assert not first.get("failed"), first.get("msg")
    assert first["copied"] == [fresh_base["backup_id"]] and first["wal_uploaded"] >= 1
    # The case that used to repeat: WAL Barman keeps locally that remote retention deletes.
    assert first["retention"]["wal_deleted"] >= 1, "no WAL older than the kept base backup: the test proves nothing"
    stored = s3.etags("site-inc/")

    second = run_module("stackops.runbooks.offsite_copy", target, label="h-off-pitr-inc-2")
    assert not second.get("failed"), second.get("msg")
    assert second["wal_uploaded"] == 0, "WAL already off-site (or deleted by retention) was sent again"
    assert second["retention"]["wal_deleted"] == 0 and second["retention"]["deleted"] == []
    assert second["objects_uploaded"] == 0 and second["changed"] is False
    assert second["wal_below_retention"] == first["retention"]["wal_deleted"]
    assert s3.etags("site-inc/") == stored, "the target changed on a run with nothing new"


# ---------------------------------------------------------------------------------------------- SSH targets

def test_physical_copies_go_to_an_ssh_target_encrypted_and_recover_from_it(pitr_stack, s3, fresh_base, tmp_path):
    """kind=pitr over SSH: the copy (age-encrypted at copy time, as on S3), incremental, listed; then the PITR
    directory loses every base backup and WAL file and `restore --to-latest --from-remote` recovers from the SSH
    target alone."""
    stack, backup_id = pitr_stack, fresh_base["backup_id"]
    public = age_key(tmp_path / "key.txt")
    server = Sshd(tmp_path / "sshd", SSH_PORTS).start()
    try:
        remote = tmp_path / "ssh copies"
        target = dict(server.target(remote), type="ssh")
        common = dict(target, pitr_dir=str(stack.pitr_dir), server_name=PROJECT)
        results = batch([
            step("copy", "offsite_copy", kind="pitr", age_recipients=[public], retention={"keep_last": 1}, **common),
            step("again", "offsite_copy", kind="pitr", age_recipients=[public], retention={"keep_last": 1}, **common),
            step("info", "offsite_info", kind="pitr", **dict(target, server_name=PROJECT)),
        ], label="h-off-pitr-ssh")
        copy, again, info = results["copy"], results["again"], results["info"]
        assert not copy["failed"], copy.get("msg")
        assert copy["copied"] == [backup_id] and copy["encrypted"] is True and copy["wal_uploaded"] >= 1
        assert copy["target"].startswith("ssh://") and copy["latest_verified"]["id"] == backup_id
        assert not again["failed"] and again["copied"] == [] and again["present"] == [backup_id]
        assert again["objects_uploaded"] == 0 and again["changed"] is False, again
        assert [base["id"] for base in info["base_backups"]] == [backup_id] and info["wal_files"] >= 1

        # Ciphertext only, but for the markers and the WAL catalog; no pgpass or configuration.
        root = remote / ".pitr" / PROJECT
        readable = {root / "wal-catalog.json", root / "base" / backup_id / "stackops-copy.json"}
        stored = [path for path in root.rglob("*") if path.is_file()]
        assert readable <= set(stored)
        for path in stored:
            assert "pgpass" not in path.name and not path.name.endswith(".conf"), path
            if path not in readable:
                assert path.name.endswith(".age") and path.read_bytes().startswith(b"age-encryption.org/v1"), path

        # Disaster: every base backup and archived WAL file is gone locally; the only copy is on the SSH host.
        home = stack.pitr_dir / "home" / PROJECT
        for name in ("base", "meta", "wals"):
            shutil.rmtree(home / name)
        shutil.rmtree(stack.pitr_dir / "verified")
        group_vars = stack.inventory / "group_vars" / "stacks.yml"
        saved = group_vars.read_text()
        variables = json.loads(saved)
        variables["stackops_offsite_targets"] = [dict(target, name="backuphost")]
        group_vars.write_text(json.dumps(variables, indent=2))
        try:
            result = stackops(stack, s3, "restore", "--to-latest", "--from-remote", "--yes", "-e",
                              "stackops_offsite_age_identity_file=%s" % (tmp_path / "key.txt"))
        finally:
            group_vars.write_text(saved)
        assert result["swapped"] is True
        assert result["from_remote"]["backup_id"] == backup_id and result["from_remote"]["target"].startswith("ssh://")
        assert (home / "base" / backup_id).is_dir()
        assert (fresh_base["marker"].decode(),) in sql(stack, "SELECT note FROM markers")
    finally:
        server.stop()

