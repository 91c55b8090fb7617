"""Off-site copies on a real S3 server (SeaweedFS on loopback) of real backup sets of a real PostgreSQL cluster.

Covers: upload, check, list, remote retention; an interrupted (kill -9) multipart upload never counts and is
resumed; a changed remote object is detected by the check and refused by a fetch; wrong credentials fail clearly
with the secret absent from every byte ansible-runner wrote; fetch + restore gives the same content.
"""
import hashlib
import json
import os
import secrets
import signal
import subprocess
import sys
import time

import pytest
import yaml

from ansible_collections.stackops.runbooks.plugins.module_utils.recoverability import offsite_copies
from support.backup import create_db, fingerprint, stackops_result, step
from support.offsite import age_key, output_text, run_steps
from support.ports import port, project
from support.runner import REPO, _private_dir, runner_env
from support.s3server import S3Server

PORT = port(56710)


@pytest.fixture(scope="module")
def s3():
    server = S3Server(PORT, "s3-secret-" + secrets.token_hex(12)).start()
    yield server
    server.stop()


def _blob(path, mib):
    path.write_bytes(os.urandom(mib * 1024 * 1024))
    return str(path)


def test_copy_check_list_retention_and_fetch(pg_cluster, s3, tmp_path):
    create_db(pg_cluster, "offsite_db")
    backup_dir = tmp_path / "backups"
    blob = _blob(tmp_path / "blob.bin", 11)  # makes the set multipart with 5 MiB parts
    target = s3.target("hostA", part_size_mib=5)
    policy = dict(keep_last=1, keep_daily=0, keep_weekly=0, keep_monthly=0)
    results = run_steps(pg_cluster, backup_dir, [
        step("b1", "pg_backup", database="offsite_db", include_files=[blob]),
        step("v1", "pg_backup_verify", backup_id="{{ b1.backup_id }}"),
        step("b2", "pg_backup", database="offsite_db"),
        step("copy_plan", "offsite_copy", check=True, database="offsite_db", sets="all", **target),
        step("copy_all", "offsite_copy", database="offsite_db", sets="all", **target),
        step("copy_again", "offsite_copy", database="offsite_db", sets="all", **target),
        step("copy_unverified", "offsite_copy", database="offsite_db", backup_id="{{ b2.backup_id }}", **target),
        step("info", "offsite_info", database="offsite_db", remote_check="download", **target),
        step("fetch", "offsite_fetch", backup_id="{{ b1.backup_id }}", dest=str(tmp_path / "work"), **target),
        step("restore", "pg_backup_restore", backup_dir=str(tmp_path / "work"), backup_id="{{ b1.backup_id }}",
             target_database="offsite_back"),
        step("v2", "pg_backup_verify", backup_id="{{ b2.backup_id }}"),
        step("prune", "offsite_copy", database="offsite_db", retention=policy, **target),
        step("info_after", "offsite_info", database="offsite_db", **target),
    ], "offsite-copy")
    failed = {name: res.get("msg") for name, res in results.items() if res["failed"] and name != "copy_unverified"}
    assert not failed, failed
    ids = [results[name]["backup_id"] for name in ("b1", "b2")]

    assert results["copy_plan"]["copied"] == [ids[0]] and results["copy_plan"]["changed"]
    assert s3.keys("hostA/") != [] and results["copy_all"]["copied"] == [ids[0]]
    assert results["copy_all"]["uploaded_bytes"] > 11 * 1024 * 1024
    assert results["copy_again"]["copied"] == [] and not results["copy_again"]["changed"]
    assert results["copy_unverified"]["failed"] and "not verified" in results["copy_unverified"]["msg"]

    info = results["info"]
    assert [entry["id"] for entry in info["backups"]] == [ids[0]]
    assert info["ok"] and info["problems"] == {} and info["unfinished"] == []
    assert info["latest_verified"]["id"] == ids[0] and info["rpo_seconds"] is not None

    assert results["fetch"]["changed"] and results["fetch"]["downloaded_bytes"] > 11 * 1024 * 1024
    assert fingerprint(pg_cluster, "offsite_back") == fingerprint(pg_cluster, "offsite_db")

    # keep_last=1 keeps b2 (newest, verified by now) and deletes b1 with every key under it.
    assert results["prune"]["copied"] == [ids[1]]
    assert results["prune"]["retention"]["deleted"] == [ids[0]]
    assert [entry["id"] for entry in results["info_after"]["backups"]] == [ids[1]]
    assert results["info_after"]["unfinished"] == []
    assert s3.keys("hostA/%s/" % ids[0]) == []
    keys = s3.keys("hostA/%s/" % ids[1])
    assert "hostA/%s/stackops-copy.json" % ids[1] in keys and "hostA/%s/manifest.json" % ids[1] in keys
    # Each copy run leaves the target's newest verified copy where `stackops status` reads it (docs/status.md).
    copies = offsite_copies(str(backup_dir), time.time())
    assert [(copy["database"], copy["newest_verified"]) for copy in copies] == [("offsite_db", ids[1])], copies
    assert copies[0]["age_seconds"] is not None and copies[0]["target"]

    # One changed byte in a stored object: the check names it, a fetch refuses it.
    client = s3.client()
    key = "hostA/%s/manifest.json" % ids[1]
    body = bytearray(client.get_object(Bucket=s3.bucket, Key=key)["Body"].read())
    body[10] ^= 0x01
    client.put_object(Bucket=s3.bucket, Key=key, Body=bytes(body))
    damaged = run_steps(pg_cluster, backup_dir, [
        step("check", "offsite_info", database="offsite_db", remote_check="etag", **target),
        step("fetch", "offsite_fetch", database="offsite_db", dest=str(tmp_path / "work2"), **target),
    ], "offsite-damaged")
    assert not damaged["check"]["ok"] and ids[1] in damaged["check"]["problems"], damaged["check"]
    assert "ETag" in damaged["check"]["problems"][ids[1]][0]
    assert damaged["check"]["rpo_seconds"] is None
    assert damaged["fetch"]["failed"] and "damaged" in damaged["fetch"]["msg"]
    assert not (tmp_path / "work2" / ids[1]).exists() and not (tmp_path / "work2" / (ids[1] + ".partial")).exists()
    assert s3.secret_key not in output_text(results["copy_all"]["_run"])


def _copy_playbook(private, pg_cluster, backup_dir, target, backup_id, rate):
    args = dict(backup_dir=str(backup_dir))
    args.update(target, database="offsite_big", backup_id=backup_id, max_bandwidth_mib=rate, max_concurrency=1)
    play = [{"name": "copy", "hosts": "localhost", "gather_facts": False,
             "tasks": [{"name": "copy", "stackops.runbooks.offsite_copy": args}]}]
    path = private / "copy.yml"
    path.write_text(yaml.safe_dump(play))
    return path


def descendants(root):
    children = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = open("/proc/%s/stat" % entry).read()
            except OSError:
                continue
            ppid = int(stat.rsplit(")", 1)[1].split()[1])
            children.setdefault(ppid, []).append(int(entry))
    found, todo = [], [root]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def test_interrupted_upload_never_counts_and_resumes(pg_cluster, s3, tmp_path):
    create_db(pg_cluster, "offsite_big", schema_sql="CREATE TABLE t (x int); INSERT INTO t VALUES (1)")
    backup_dir = tmp_path / "backups"
    blob = _blob(tmp_path / "big.bin", 40)
    target = s3.target("hostB", part_size_mib=5)
    made = run_steps(pg_cluster, backup_dir, [
        step("b", "pg_backup", database="offsite_big", include_files=[blob], compression="none"),
        step("v", "pg_backup_verify", backup_id="{{ b.backup_id }}"),
    ], "offsite-big")
    backup_id = made["b"]["backup_id"]
    assert not made["v"]["failed"], made["v"].get("msg")

    private = _private_dir("offsite-kill")
    playbook = _copy_playbook(private, pg_cluster, backup_dir, target, backup_id, rate=8)
    env = dict(os.environ, **runner_env())
    inventory = "localhost ansible_connection=local ansible_python_interpreter=%s," % sys.executable
    proc = subprocess.Popen([os.path.join(os.path.dirname(sys.executable), "ansible-playbook"), "-i", inventory,
                             str(playbook)], cwd=str(REPO), env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, start_new_session=True)
    client = s3.client()
    data_key = None
    deadline = time.monotonic() + 60
    parts = []
    while time.monotonic() < deadline and len(parts) < 2 and proc.poll() is None:
        uploads = client.list_multipart_uploads(Bucket=s3.bucket, Prefix="hostB/").get("Uploads") or []
        if uploads:
            data_key = uploads[0]["Key"]
            parts = client.list_parts(Bucket=s3.bucket, Key=data_key, UploadId=uploads[0]["UploadId"]).get("Parts") or []
        time.sleep(0.1)
    # kill -9 of the whole run: ansible's workers run in sessions of their own, so every descendant by pid.
    for pid in [proc.pid] + descendants(proc.pid):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    out = proc.communicate()[0].decode(errors="replace")
    assert len(parts) >= 2, "no multipart upload in progress seen; output:\n%s" % out

    after_kill = run_steps(pg_cluster, backup_dir, [
        step("info", "offsite_info", database="offsite_big", **target),
        step("fetch", "offsite_fetch", backup_id=backup_id, dest=str(tmp_path / "work"), **target),
        step("resume", "offsite_copy", database="offsite_big", backup_id=backup_id, **target),
        step("info2", "offsite_info", database="offsite_big", remote_check="download", **target),
    ], "offsite-resume")
    assert after_kill["info"]["backups"] == [] and after_kill["info"]["rpo_seconds"] is None
    assert [entry["id"] for entry in after_kill["info"]["unfinished"]] == [backup_id]
    assert after_kill["fetch"]["failed"] and "no complete copy" in after_kill["fetch"]["msg"]
    resume = after_kill["resume"]
    assert not resume["failed"], resume.get("msg")
    assert resume["copied"] == [backup_id] and resume["resumed_bytes"] >= 2 * 5 * 1024 * 1024
    assert after_kill["info2"]["ok"] and [entry["id"] for entry in after_kill["info2"]["backups"]] == [backup_id]
    assert client.list_multipart_uploads(Bucket=s3.bucket, Prefix="hostB/").get("Uploads") in (None, [])


def test_wrong_credentials_fail_clearly_without_the_secret(pg_cluster, s3, tmp_path):
    wrong = "wrong-secret-" + secrets.token_hex(10)
    results = run_steps(pg_cluster, tmp_path / "backups", [
        step("copy", "offsite_copy", database="offsite_db", **s3.target("hostC", secret_key=wrong)),
        step("info", "offsite_info", **s3.target("hostC", secret_key=wrong)),
        step("nobucket", "offsite_info", **s3.target("hostC", bucket="no-such-bucket-h8")),
    ], "offsite-creds")
    for name in ("copy", "info"):
        assert results[name]["failed"]
        assert "refused the credentials" in results[name]["msg"] and "SignatureDoesNotMatch" in results[name]["msg"]
    assert results["nobucket"]["failed"] and "does not exist" in results["nobucket"]["msg"]
    text = output_text(results["copy"]["_run"])
    assert wrong not in text and s3.secret_key not in text


def test_a_tampered_marker_cannot_write_outside_the_work_directory(pg_cluster, s3, tmp_path):
    """Whoever can write to the bucket can rewrite a copy's marker: an object named '../../...' must not make a root
    restore write outside its work directory (e.g. into /etc/cron.d), not even a directory."""
    create_db(pg_cluster, "offsite_tamper", schema_sql="CREATE TABLE t (x int); INSERT INTO t VALUES (1)")
    backup_dir = tmp_path / "backups"
    target = s3.target("hostT")
    made = run_steps(pg_cluster, backup_dir, [
        step("b", "pg_backup", database="offsite_tamper"),
        step("v", "pg_backup_verify", backup_id="{{ b.backup_id }}"),
        step("copy", "offsite_copy", database="offsite_tamper", **target),
    ], "offsite-tamper-copy")
    assert not [name for name, res in made.items() if res["failed"]], made
    backup_id = made["b"]["backup_id"]

    # The marker names an object outside the set's directory (this server refuses to store a key with '..', others
    # do not; the name alone decides where a fetch writes).
    client = s3.client()
    marker_key = "hostT/%s/stackops-copy.json" % backup_id
    marker = json.loads(client.get_object(Bucket=s3.bucket, Key=marker_key)["Body"].read())
    payload = b"* * * * * root touch /tmp/owned\n"
    evil = "../../escaped/cron.d/stackops"
    marker["objects"][evil] = dict(marker["objects"]["manifest.json"], size=len(payload),
                                   sha256=hashlib.sha256(payload).hexdigest())
    client.put_object(Bucket=s3.bucket, Key=marker_key, Body=json.dumps(marker).encode())

    work = tmp_path / "work"
    fetched = run_steps(pg_cluster, backup_dir, [
        step("fetch", "offsite_fetch", backup_id=backup_id, dest=str(work), **target),
    ], "offsite-tamper-fetch")["fetch"]
    would_be = tmp_path / "escaped" / "cron.d" / "stackops"  # <work>/<id>.partial/../../escaped/...
    assert fetched["failed"], fetched
    assert not (tmp_path / "escaped").exists()  # not even the directory a download would go to
    assert "tampered" in fetched["msg"] and "nothing was written" in fetched["msg"]
    assert "hostT/%s/%s" % (backup_id, evil) in fetched["msg"] and str(would_be) in fetched["msg"]
    assert not work.exists() or os.listdir(str(work)) == []


class StackDb:
    """fingerprint() against the stack's database, as the application role."""

    def __init__(self, stack):
        self.stack = stack

    def connect(self, dbname="appdb"):
        import psycopg
        return psycopg.connect(host="127.0.0.1", port=self.stack.postgres_port, user="app",
                               password=self.stack.password, dbname=dbname, autocommit=True)


def test_disaster_recovery_from_remote(docker_engine, s3, tmp_path):
    """Back up with an off-site encrypted copy; lose the backup dir and the DB volume; start a fresh stack;
    `stackops restore --from-remote`; health green and every table equal."""
    from support.runner import run_playbook
    from support.stack import TestStack

    stack = TestStack(project=project("stackops-h8-dr"), postgres_port=PORT + 50, frontend_port=PORT + 51)
    stack.write_config()
    stack.down()
    stack.up()
    try:
        db = StackDb(stack)
        with db.connect() as conn:
            conn.execute("CREATE TABLE dr_check (id int PRIMARY KEY, note text)")
            conn.execute("INSERT INTO dr_check SELECT i, 'row ' || i FROM generate_series(1, 2000) AS i")
        public = age_key(tmp_path / "dr-key.txt")
        target = s3.target("dr")
        secret = target.pop("secret_key")
        extravars = {"stackops_offsite_targets": [dict(target, name="dr-s3")], "stackops_offsite_secret_key": secret,
                     "stackops_offsite_age_recipients": [public],
                     "stackops_offsite_age_identity_file": str(tmp_path / "dr-key.txt")}
        backup = run_playbook("backup.yml", inventory=stack.inventory, extravars=extravars, label="dr-backup")
        assert backup.rc == 0, backup.stdout
        before = fingerprint(db, "appdb")
        backup_dir = REPO / "tests" / "output" / "backups" / stack.project

        state = tmp_path / "state"
        state.mkdir()
        cli_env = dict(os.environ, STACKOPS_STATE_DIR=str(state), NO_COLOR="1", AWS_ACCESS_KEY_ID=target["access_key"],
                       AWS_SECRET_ACCESS_KEY=secret)
        stackops = os.path.join(os.path.dirname(sys.executable), "stackops")
        listing_vars = tmp_path / "list-vars.json"
        listing_vars.write_text(json.dumps({"stackops_offsite_targets": [
            {k: v for k, v in target.items() if k != "access_key"}]}))
        listed = subprocess.run([stackops, "backups", "--offsite", "--rpo", "1h", "--rpo-strict", "--json", "-i",
                                 str(stack.inventory), "-e", "@%s" % listing_vars], capture_output=True, text=True,
                                timeout=600, cwd=str(REPO), env=cli_env)
        assert listed.returncode == 0, listed.stdout[-3000:] + listed.stderr[-3000:]
        catalog = json.loads(listed.stdout)["result"][stack.project]
        taken = stackops_result(backup)[stack.project]["backup_id"]
        assert catalog["locations"] == {taken: "both"} and catalog["rpo_source"] == "offsite"
        assert catalog["rpo_seconds"] is not None and catalog["offsite"][0]["latest_verified"]["id"] == taken

        subprocess.run(["rm", "-rf", str(backup_dir)], check=True)
        stack.down()  # removes the DB volume
        stack.up()
        with db.connect() as conn:
            assert conn.execute("SELECT to_regclass('dr_check')").fetchone()[0] is None

        # The CLI refuses secrets as extra vars: the operator's shell gives boto3 the standard AWS variables.
        target.pop("access_key")
        cli_vars = {"stackops_offsite_targets": [dict(target, name="dr-s3")],
                    "stackops_offsite_age_identity_file": str(tmp_path / "dr-key.txt")}
        vars_file = tmp_path / "dr-vars.json"
        vars_file.write_text(json.dumps(cli_vars))
        # The real stackops executable, as an operator runs it.
        done = subprocess.run([stackops, "restore", "--from-remote",
                               "--replace", "--yes", "--json", "-i", str(stack.inventory), "-e", "@%s" % vars_file],
                              capture_output=True, text=True, timeout=900, cwd=str(REPO),
                              env=cli_env)
        assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
        result = json.loads(done.stdout)["result"][stack.project]
        assert result["restored"] and result["health_ok"] is True, result
        assert result["from_remote"]["target"].startswith("s3://") and result["from_remote"]["encrypted"]
        assert fingerprint(db, "appdb") == before
        assert secret not in done.stdout + done.stderr + listed.stdout + listed.stderr + output_text(backup)
    finally:
        stack.down()
