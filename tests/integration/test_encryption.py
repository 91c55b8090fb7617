"""Client-side age encryption of off-site copies, with the real age CLI, a real S3 server and real PostgreSQL.

Round trip (encrypted on this host, nothing readable on the server, decrypted and restored with the same content);
a key that does not match fails before anything is downloaded or touched; a ciphertext with one changed byte is
refused by age's authentication even when the marker is rewritten to match it.
"""
import hashlib
import json
import secrets

import pytest

from support.backup import create_db, fingerprint, step
from support.ports import port
from support.s3server import S3Server
from support.offsite import age_key, run_steps

PORT = port(56720)


@pytest.fixture(scope="module")
def s3():
    server = S3Server(PORT, "s3-secret-" + secrets.token_hex(12)).start()
    yield server
    server.stop()


def test_encrypted_round_trip_wrong_key_and_flipped_byte(pg_cluster, s3, tmp_path):
    create_db(pg_cluster, "enc_db")
    public = age_key(tmp_path / "key.txt")
    other = age_key(tmp_path / "other.txt")
    target = s3.target("enc")
    work = tmp_path / "work"
    results = run_steps(pg_cluster, tmp_path / "backups", [
        step("b", "pg_backup", database="enc_db"),
        step("v", "pg_backup_verify", backup_id="{{ b.backup_id }}"),
        step("copy", "offsite_copy", database="enc_db", age_recipients=[public], **target),
        step("wrong_key", "offsite_fetch", database="enc_db", dest=str(work),
             age_identity_file=str(tmp_path / "other.txt"), **target),
        step("no_key", "offsite_fetch", database="enc_db", dest=str(work), **target),
        step("fetch", "offsite_fetch", database="enc_db", dest=str(work), age_identity_file=str(tmp_path / "key.txt"),
             **target),
        step("restore", "pg_backup_restore", backup_dir=str(work), backup_id="{{ b.backup_id }}",
             target_database="enc_back"),
    ], "encryption")
    backup_id = results["b"]["backup_id"]
    for name in ("b", "v", "copy", "fetch", "restore"):
        assert not results[name]["failed"], (name, results[name].get("msg"))

    # Everything but the marker is ciphertext; no table name or row content is readable on the server.
    keys = s3.keys("enc/%s/" % backup_id)
    assert all(key.endswith(".age") for key in keys if not key.endswith("stackops-copy.json")), keys
    client = s3.client()
    for key in keys:
        if key.endswith(".age"):
            body = client.get_object(Bucket=s3.bucket, Key=key)["Body"].read()
            assert body.startswith(b"age-encryption.org/v1") and b"MixedCase" not in body
    marker = json.loads(client.get_object(Bucket=s3.bucket, Key="enc/%s/stackops-copy.json" % backup_id)["Body"].read())
    assert marker["encryption"] == {"method": "age", "recipients": [public]}
    manifest = json.loads((tmp_path / "backups" / backup_id / "manifest.json").read_text())
    for rel, meta in manifest["files"].items():
        recorded = marker["objects"][rel + ".age"]
        assert recorded["plaintext_sha256"] == meta["sha256"] and recorded["sha256"] != meta["sha256"]

    # The key is checked first: nothing downloaded, nothing to restore from.
    for name, expected in (("wrong_key", other), ("no_key", "does not exist")):
        assert results[name]["failed"] and expected in results[name]["msg"], results[name]["msg"]
    assert results["wrong_key"]["downloaded_bytes"] == 0 and "Nothing was downloaded" in results["wrong_key"]["msg"]
    assert fingerprint(pg_cluster, "enc_back") == fingerprint(pg_cluster, "enc_db")

    # One changed byte in the middle of the dump's ciphertext, the marker rewritten to match: age refuses it.
    data_key = "enc/%s/%s.age" % (backup_id, manifest["data"])
    body = bytearray(client.get_object(Bucket=s3.bucket, Key=data_key)["Body"].read())
    body[len(body) // 2] ^= 0x01
    client.put_object(Bucket=s3.bucket, Key=data_key, Body=bytes(body))
    entry = marker["objects"][manifest["data"] + ".age"]
    entry.update(sha256=hashlib.sha256(body).hexdigest(), etag=hashlib.md5(body).hexdigest(), size=len(body))
    client.put_object(Bucket=s3.bucket, Key="enc/%s/stackops-copy.json" % backup_id,
                      Body=json.dumps(marker).encode())
    flipped = run_steps(pg_cluster, tmp_path / "backups", [
        step("fetch", "offsite_fetch", backup_id=backup_id, dest=str(tmp_path / "work2"),
             age_identity_file=str(tmp_path / "key.txt"), **target),
    ], "encryption-flip")
    assert flipped["fetch"]["failed"] and "age refused to decrypt" in flipped["fetch"]["msg"], flipped["fetch"]["msg"]
    assert not (tmp_path / "work2" / backup_id).exists()
    assert not (tmp_path / "work2" / (backup_id + ".partial")).exists()
