"""Local backup sets encrypted at rest (stackops_backup_encrypt, pg_backup_encrypt) with the real age CLI, real
PostgreSQL and a real S3 server on loopback.

Verified on the plaintext first, then encrypted; listed as encrypted; restored streamed and from a file with the
identity file to the same content; a wrong or missing key is refused before the target is touched; one flipped
byte is refused; retention treats encrypted sets like any other; an off-site copy uploads the ciphertext as it is;
kill -9 around the atomic exchange leaves the old set or the new one, never a missing or half set; the backup and
restore roles encrypt and decrypt a single database and an --all-databases group (globals.sql included).
"""
import hashlib
import json
import secrets
import shutil
import sys
from pathlib import Path

import pytest
import yaml

from ansible_collections.stackops.runbooks.plugins.module_utils.backup_catalog import catalog
from support import processes
from support.backup import create_db, db_exists, fingerprint, run, step
from support.offsite import age_key, run_steps
from support.pgcluster import PgCluster
from support.ports import port
from support.runner import run_playbook
from support.s3server import S3Server

pytestmark = pytest.mark.pg

DB = "encl_db"
S3_PORT = port(56650)  # uses 56650-56658


@pytest.fixture(scope="module")
def keys(tmp_path_factory):
    root = tmp_path_factory.mktemp("age")
    return dict(public=age_key(root / "key.txt"), identity=str(root / "key.txt"),
                other_public=age_key(root / "other.txt"), other=str(root / "other.txt"))


def set_dirs(backup_dir):
    """Set directories (complete or .partial) in backup_dir; not the lock directory, not last_backup.json."""
    return sorted(p.name for p in Path(backup_dir).iterdir() if p.is_dir() and not p.name.startswith("."))


def encrypt_step(name, backup_dir, backup_id, recipients, **extra):
    return step(name, "pg_backup_encrypt", backup_dir=str(backup_dir), backup_id=backup_id, age_recipients=recipients,
                **extra)


def test_encrypted_set_round_trip_refusals_retention_and_offsite(pg_cluster, keys, tmp_path):
    create_db(pg_cluster, DB)
    for name in ("encl_stream", "encl_file", "encl_wrong", "encl_nokey", "encl_flip", "encl_remote", "encl_dir"):
        pg_cluster.sql('DROP DATABASE IF EXISTS "%s" WITH (FORCE)' % name)
    backups = tmp_path / "backups"
    public, identity = keys["public"], keys["identity"]
    results = run_steps(pg_cluster, backups, [
        step("b", "pg_backup", database=DB),
        encrypt_step("unverified", backups, "{{ b.backup_id }}", [public]),
        step("v", "pg_backup_verify", backup_id="{{ b.backup_id }}"),
        encrypt_step("planned", backups, "{{ b.backup_id }}", [public], check=True),
        encrypt_step("e", backups, "{{ b.backup_id }}", [public]),
        encrypt_step("again", backups, "{{ b.backup_id }}", [keys["other_public"]]),
        step("info", "pg_backup_info", backup_dir=str(backups), database=DB),
        step("wrong", "pg_backup_restore", backup_id="{{ b.backup_id }}", target_database="encl_wrong",
             age_identity_file=keys["other"]),
        step("nokey", "pg_backup_restore", backup_id="{{ b.backup_id }}", target_database="encl_nokey"),
        step("stream", "pg_backup_restore", backup_id="{{ b.backup_id }}", target_database="encl_stream",
             age_identity_file=identity),
        step("file", "pg_backup_restore", backup_id="{{ b.backup_id }}", target_database="encl_file",
             age_identity_file=identity, streaming=False),
        step("reverify", "pg_backup_verify", backup_id="{{ b.backup_id }}", age_identity_file=identity),
        # A directory-format set with globals (what --all-databases takes): every file encrypted on its own.
        step("bd", "pg_backup", database=DB, format="directory", compression="gzip", include_globals=True),
        step("vd", "pg_backup_verify", backup_id="{{ bd.backup_id }}"),
        encrypt_step("ed", backups, "{{ bd.backup_id }}", [public]),
        step("globals", "pg_globals_restore", check=True, backup_id="{{ bd.backup_id }}", age_identity_file=identity,
             backup_dir=str(backups), **pg_cluster.params()),
        step("globals_nokey", "pg_globals_restore", check=True, backup_id="{{ bd.backup_id }}",
             backup_dir=str(backups), **pg_cluster.params()),
        step("rd", "pg_backup_restore", backup_id="{{ bd.backup_id }}", target_database="encl_dir",
             age_identity_file=identity),
    ], "enc-local")
    for name in ("b", "v", "planned", "e", "again", "info", "stream", "file", "reverify", "bd", "vd", "ed", "globals",
                 "rd"):
        assert not results[name]["failed"], (name, results[name].get("msg"))
    backup_id = results["b"]["backup_id"]
    plain = results["b"]["manifest"]

    # Encryption only after the trial restore; check mode writes nothing; a second run changes nothing.
    assert results["unverified"]["failed"] and "has not been verified" in results["unverified"]["msg"]
    assert results["planned"]["changed"] and results["e"]["changed"] and not results["again"]["changed"]
    assert any("never encrypted twice" in w for w in results["again"].get("warnings", []))

    # On disk: only ciphertext and the readable manifest; the manifest records plaintext and ciphertext.
    set_dir = backups / backup_id
    manifest = json.loads((set_dir / "manifest.json").read_text())
    on_disk = sorted(str(p.relative_to(set_dir)) for p in set_dir.rglob("*") if p.is_file())
    assert on_disk == sorted(list(manifest["files"]) + ["manifest.json", "verification.json"])
    assert sorted(manifest["files"]) == sorted(rel + ".age" for rel in plain["files"])
    assert manifest["encryption"]["files"] == plain["files"] and manifest["encryption"]["recipients"] == [public]
    assert manifest["encryption"]["checksum"] == plain["checksum"] and manifest["checksum"] != plain["checksum"]
    for rel, meta in manifest["files"].items():
        body = (set_dir / rel).read_bytes()
        assert body.startswith(b"age-encryption.org/v1") and len(body) == meta["size"]
        assert meta["sha256"] != plain["files"][rel[:-4]]["sha256"]
    assert b"MixedCase" not in (set_dir / (plain["data"] + ".age")).read_bytes()
    assert set_dirs(backups) == sorted([backup_id, results["bd"]["backup_id"]]), "no .partial, no plaintext copy left"

    listed = [entry for entry in results["info"]["backups"] if entry["id"] == backup_id][0]
    assert listed["encrypted"] is True and listed["encryption_recipients"] == [public] and listed["verified"] is True

    # A key that is not one of the recipients, or none: refused before the target is created.
    assert results["wrong"]["failed"] and keys["other_public"] in results["wrong"]["msg"], results["wrong"]["msg"]
    assert "Nothing was touched" in results["wrong"]["msg"] and "age_identity_file" in results["nokey"]["msg"]
    assert not db_exists(pg_cluster, "encl_wrong") and not db_exists(pg_cluster, "encl_nokey")

    # Both restore methods, from the decrypted plaintext, to the same content; re-verification decrypts too.
    source = fingerprint(pg_cluster, DB)
    assert results["stream"]["restore_method"] == "stream" and results["file"]["restore_method"] == "pg_restore"
    assert fingerprint(pg_cluster, "encl_stream") == source and fingerprint(pg_cluster, "encl_file") == source
    assert results["reverify"]["verified"] and results["reverify"]["encrypted"]
    assert not [p for p in backups.iterdir() if p.name.startswith(".stackops-")], "decrypted scratch left behind"
    directory = json.loads((backups / results["bd"]["backup_id"] / "manifest.json").read_text())
    assert "globals.sql.age" in directory["files"] and len(directory["files"]) > 3
    assert all(rel.startswith(("data/", "globals.sql")) and rel.endswith(".age") for rel in directory["files"])
    assert fingerprint(pg_cluster, "encl_dir") == source and results["rd"]["restore_method"] == "pg_restore"
    assert "created_roles" in results["globals"] and "age_identity_file" in results["globals_nokey"]["msg"]

    # Off-site copy of the encrypted set: the ciphertext goes up as it is, never encrypted twice; it comes down
    # as it is and restores with the identity file.
    s3 = S3Server(S3_PORT, "s3-secret-" + secrets.token_hex(12)).start()
    try:
        target = s3.target("encl")
        work = tmp_path / "work"
        remote = run_steps(pg_cluster, backups, [
            step("copy", "offsite_copy", database=DB, backup_id=backup_id, age_recipients=[public], **target),
            step("fetch", "offsite_fetch", backup_id=backup_id, dest=str(work), **target),
            step("restore", "pg_backup_restore", backup_dir=str(work), backup_id=backup_id,
                 target_database="encl_remote", age_identity_file=identity),
        ], "enc-local-offsite")
        for name in ("copy", "fetch", "restore"):
            assert not remote[name]["failed"], (name, remote[name].get("msg"))
        objects = s3.keys("encl/%s/" % backup_id)
        marker = json.loads(s3.client().get_object(Bucket=s3.bucket, Key="encl/%s/stackops-copy.json" % backup_id)
                            ["Body"].read())
    finally:
        s3.stop()
    assert objects and not [key for key in objects if key.endswith(".age.age")], objects
    assert "encl/%s/manifest.json" % backup_id in objects
    assert marker["encryption"] == {"method": "age", "recipients": [public], "at_rest": True}
    for rel, meta in manifest["files"].items():
        assert marker["objects"][rel]["sha256"] == meta["sha256"]
    assert fingerprint(pg_cluster, "encl_remote") == source

    # One flipped byte in the ciphertext: refused by its checksum; in a copy whose manifest was rewritten to match
    # it, by age's authentication.
    forged_dir = tmp_path / "forged"
    shutil.copytree(backups / backup_id, forged_dir / backup_id)
    for root in (backups, forged_dir):
        data = root / backup_id / (plain["data"] + ".age")
        body = bytearray(data.read_bytes())
        body[len(body) // 2] ^= 0x01
        data.write_bytes(bytes(body))
    manifest["files"][data.name].update(sha256=hashlib.sha256(bytes(body)).hexdigest())
    (forged_dir / backup_id / "manifest.json").write_text(json.dumps(manifest))
    flipped = run_steps(pg_cluster, backups, [
        step("checksum", "pg_backup_restore", backup_id=backup_id, target_database="encl_flip",
             age_identity_file=identity),
        step("age", "pg_backup_restore", backup_dir=str(forged_dir), backup_id=backup_id, target_database="encl_flip",
             age_identity_file=identity),
    ], "enc-local-flip")
    assert flipped["checksum"]["failed"] and "does not match its manifest" in flipped["checksum"]["msg"]
    assert flipped["age"]["failed"] and "age refused to decrypt" in flipped["age"]["msg"], flipped["age"]["msg"]
    assert not db_exists(pg_cluster, "encl_flip")
    for root in (backups, forged_dir):
        assert not [p for p in root.iterdir() if p.name.startswith(".stackops-")]


def kill_encrypt_at(monkeypatch, phase, params):
    processes.kill_at(monkeypatch, phase, "pg_backup_encrypt", lambda: run("pg_backup_encrypt", params))


def test_kill_around_the_exchange_leaves_the_old_or_the_new_set(pg_cluster, keys, monkeypatch, tmp_path):
    create_db(pg_cluster, "encl_kill", schema_sql="CREATE TABLE t (id int); INSERT INTO t SELECT generate_series(1, 50);")
    backups = tmp_path / "backups"
    first = run_steps(pg_cluster, backups, [
        step("b", "pg_backup", database="encl_kill"),
        step("v", "pg_backup_verify", backup_id="{{ b.backup_id }}"),
    ], "enc-kill-setup")
    backup_id = first["b"]["backup_id"]
    plain = first["b"]["manifest"]
    params = dict(backup_dir=str(backups), backup_id=backup_id, age_recipients=[keys["public"]])
    listed = dict(backup_dir=str(backups), database="encl_kill")

    # Killed with the encrypted copy complete but not swapped in: the verified plaintext set is untouched and listed,
    # the copy is an ignored .partial.
    kill_encrypt_at(monkeypatch, "encrypt-exchange", params)
    manifest = json.loads((backups / backup_id / "manifest.json").read_text())
    assert "encryption" not in manifest and manifest["files"] == plain["files"]
    sets, partials = catalog(str(backups), "encl_kill")
    assert [(e["id"], e["verified"], e["encrypted"]) for e in sets] == [(backup_id, True, False)]
    assert [e["id"] for e in partials] == [backup_id]

    # Killed after the swap: the set is the encrypted one; the replaced plaintext is a .partial, removed next run.
    kill_encrypt_at(monkeypatch, "encrypt-cleanup", params)
    assert "encryption" in json.loads((backups / backup_id / "manifest.json").read_text())
    assert (backups / (backup_id + ".partial") / plain["data"]).exists()
    policy = dict(backup_dir=str(backups), database="encl_kill", keep_last=1, keep_daily=0, keep_weekly=0,
                  keep_monthly=0)
    last = run_steps(pg_cluster, backups, [
        step("again", "pg_backup_encrypt", **params),
        step("info", "pg_backup_info", **listed),
        # Retention treats encrypted sets like any other: the newest verified one is kept until a newer is verified.
        step("b2", "pg_backup", database="encl_kill"),
        step("keep", "pg_backup_retention", **policy),
        step("v2", "pg_backup_verify", backup_id="{{ b2.backup_id }}"),
        step("e2", "pg_backup_encrypt", **dict(params, backup_id="{{ b2.backup_id }}")),
        step("prune", "pg_backup_retention", **policy),
    ], "enc-kill-after")
    for name in ("again", "info", "b2", "keep", "v2", "e2", "prune"):
        assert not last[name]["failed"], (name, last[name].get("msg"))
    again, info = last["again"], last["info"]
    assert again["removed_stale_partial"] and again["encrypted"] and again["changed"]
    assert [(e["id"], e["verified"], e["encrypted"]) for e in info["backups"]] == [(backup_id, True, True)]
    assert info["in_progress"] == []
    assert last["keep"]["deleted"] == [] and backup_id in last["keep"]["kept"]
    assert last["prune"]["deleted"] == [backup_id] and set_dirs(backups) == [last["b2"]["backup_id"]]


def inventory(tmp_path, cluster, backup_dir, keys, name="role"):
    project = tmp_path / "project"
    project.mkdir(exist_ok=True)
    host = dict(
        ansible_connection="local", ansible_python_interpreter=sys.executable,
        stackops_db_host=cluster.host, stackops_db_port=cluster.port, stackops_db_user=cluster.user,
        stackops_db_password=cluster.password, stackops_db_name="encl_role", stackops_db_service="db",
        stackops_compose_project_dir=str(project), stackops_backup_dir=str(backup_dir),
        stackops_backup_tools_location="host", stackops_restore_tools_location="host",
        stackops_restore_stop_services=[], stackops_health_urls=[],
        stackops_backup_encrypt=True, stackops_offsite_age_recipients=[keys["public"]])
    path = tmp_path / ("inventory-%s.yml" % name)
    path.write_text(yaml.safe_dump({"stacks": {"hosts": {"node-enc": host}}}))
    return path


def test_backup_role_encrypts_and_restore_role_decrypts(pg_cluster, keys, tmp_path):
    from support.backup import stackops_result
    create_db(pg_cluster, "encl_role")
    backups = tmp_path / "backups"
    hosts = inventory(tmp_path, pg_cluster, backups, keys)
    first = run_playbook("backup.yml", inventory=hosts, label="enc-role-backup-1")
    assert first.status == "successful", first.stdout
    report = stackops_result(first)["node-enc"]
    assert report["verified"] is True and report["encrypted"] is True, report
    before = fingerprint(pg_cluster, "encl_role")

    # --no-verify with encryption on: refused before anything is written.
    refused = run_playbook("backup.yml", inventory=hosts, extravars={"stackops_backup_verify": False},
                           label="enc-role-noverify")
    assert refused.status == "failed" and "needs the age public keys" in refused.stdout
    assert set_dirs(backups) == [report["backup_id"]]

    with pg_cluster.connect("encl_role") as conn:
        conn.execute('DELETE FROM public.plain')
    restored = run_playbook("restore.yml", inventory=hosts, label="enc-role-restore",
                            extravars={"stackops_restore_confirm": True,
                                       "stackops_offsite_age_identity_file": keys["identity"]})
    assert restored.status == "successful", restored.stdout
    assert fingerprint(pg_cluster, "encl_role") == before


@pytest.fixture
def server():
    cluster = PgCluster().start()
    yield cluster
    cluster.stop()


def test_all_databases_group_encrypted_restores_after_losing_its_databases(server, keys, tmp_path):
    from support.backup import stackops_result
    server.sql("CREATE ROLE encl_owner LOGIN")
    server.sql("CREATE DATABASE encl_group OWNER encl_owner")
    with server.connect("encl_group") as conn:
        conn.execute("CREATE TABLE t (id int PRIMARY KEY, note text); ALTER TABLE t OWNER TO encl_owner;"
                     "INSERT INTO t SELECT i, 'n' || i FROM generate_series(1, 200) AS i")
    before = server.sql("SELECT id, note FROM t ORDER BY id", dbname="encl_group")
    backups = tmp_path / "backups"
    hosts = inventory(tmp_path, server, backups, keys, "group")
    backup = run_playbook("backup.yml", inventory=hosts, extravars={"stackops_backup_all_databases": True},
                          label="enc-group-backup")
    assert backup.status == "successful", backup.stdout
    report = stackops_result(backup)["node-enc"]
    assert report["encrypted"] == [True] * len(report["databases"]) and report["verified"] == report["encrypted"]
    for backup_id in report["backups"]:
        files = json.loads((backups / backup_id / "manifest.json").read_text())["files"]
        assert "globals.sql.age" in files and all(rel.endswith(".age") for rel in files)

    # The database and its owner gone: the group's encrypted globals.sql brings the role back, then the rows.
    server.sql("DROP DATABASE encl_group")
    server.sql("DROP ROLE encl_owner")
    restore = run_playbook("restore.yml", inventory=hosts, label="enc-group-restore",
                           extravars={"stackops_restore_all_databases": True, "stackops_restore_confirm": True,
                                      "stackops_offsite_age_identity_file": keys["identity"]})
    assert restore.status == "successful", restore.stdout
    assert "encl_owner" in stackops_result(restore)["node-enc"]["created_roles"]
    assert server.sql("SELECT id, note FROM t ORDER BY id", dbname="encl_group") == before
    assert server.sql("SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = 'encl_group'") == [("encl_owner",)]
