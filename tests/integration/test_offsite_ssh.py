"""Off-site copies over SSH (rsync) to a real sshd on 127.0.0.1, of real backup sets of a real PostgreSQL cluster.

Covers, through the deprecated ssh_* names: copy and its remote check, remote retention through the backup
playbook, a changed remote file detected by the check and refused by a fetch, an unfinished copy (no marker) that
never counts and is resumed with the damaged file sent again, `stackops backups` locations, and restore --from-remote
with the local backup dir deleted; with age recipients set, sets encrypted at rest go as ciphertext and restore with
the identity, a plaintext set is refused.
"""
import json
import os
import shutil

import pytest

from support.backup import create_db, fingerprint, stackops_result, step
from support.groups import cluster_on, create_group, group_digests, group_inventory, roles
from support.offsite import age_key, output_text, run_steps
from support.ports import port, port_range
from support.runner import run_playbook
from support.sshd import Sshd

pytestmark = pytest.mark.pg

PORTS = port_range(56390, 56400)
DB = "h_offsite_ssh"


@pytest.fixture
def sshd(tmp_path):
    """sshd on 127.0.0.1 (support/sshd.py); the copy root has a space in its path: every remote argument is quoted."""
    server = Sshd(tmp_path / "sshd", PORTS).start()
    remote = tmp_path / "remote copies"
    yield dict(target=server.target(remote), remote=remote)
    server.stop()


def inventory(tmp_path, pg_cluster, target):
    (tmp_path / "project").mkdir(exist_ok=True)
    group_vars = {
        "stackops_compose_project_dir": str(tmp_path / "project"), "stackops_db_host": "127.0.0.1",
        "stackops_db_port": pg_cluster.port, "stackops_db_name": DB, "stackops_db_user": pg_cluster.user,
        "stackops_db_password": pg_cluster.password, "stackops_backup_dir": str(tmp_path / "backups"),
        "stackops_backup_tools_location": "host", "stackops_restore_tools_location": "host",
        "stackops_backup_config_files": [], "stackops_writer_services": [], "stackops_health_urls": [],
        "stackops_db_service": "postgres",
        "stackops_offsite_targets": [dict(target, name="backuphost", type="ssh",
                                          retention=dict(keep_last=1, keep_daily=0, keep_weekly=0, keep_monthly=0))],
    }
    path = tmp_path / "inventory"
    (path / "group_vars").mkdir(parents=True)
    (path / "hosts.yml").write_text(
        "all:\n  children:\n    stacks:\n      hosts:\n        ssh-offsite:\n          ansible_connection: local\n"
        "          ansible_python_interpreter: \"{{ ansible_playbook_python }}\"\n")
    (path / "group_vars" / "stacks.yml").write_text(json.dumps(group_vars))
    return path


def test_copy_check_retention_resume_and_restore_from_remote(pg_cluster, sshd, tmp_path):
    create_db(pg_cluster, DB)
    pg_cluster.sql('DROP DATABASE IF EXISTS %s_back WITH (FORCE)' % DB)
    before = fingerprint(pg_cluster, DB)
    backups, remote, target = tmp_path / "backups", sshd["remote"], sshd["target"]
    first = run_steps(pg_cluster, backups, [
        step("b1", "pg_backup", database=DB),
        step("v1", "pg_backup_verify", backup_id="{{ b1.backup_id }}"),
        step("plan", "ssh_backup_copy", check=True, backup_dir=str(backups), database=DB, **target),
        step("copy", "ssh_backup_copy", backup_dir=str(backups), database=DB, **target),
        step("again", "ssh_backup_copy", backup_dir=str(backups), database=DB, **target),
    ], "h-ssh-copy")
    assert not [name for name, res in first.items() if res["failed"]], first
    b1 = first["b1"]["backup_id"]
    assert first["plan"]["copied"] == [b1] and first["plan"]["uploaded_bytes"] == 0  # check mode sends nothing
    assert first["copy"]["copied"] == [b1] and first["copy"]["resent"] == []
    assert first["copy"]["latest_verified"]["id"] == b1 and (remote / b1 / "stackops-copy.json").is_file()
    assert first["again"]["present"] == [b1] and not first["again"]["changed"]
    # This file keeps the old ssh_* names: they still run, through plugin_routing, and say what replaces them.
    deprecation = "ssh_backup_copy has been deprecated. Use stackops.runbooks.offsite_copy"
    assert deprecation in output_text(first["copy"]["_run"])

    # The backup procedure copies its new set and prunes the target by its own policy (keep_last=1).
    hosts = inventory(tmp_path, pg_cluster, target)
    backup = run_playbook("backup.yml", inventory=hosts, label="h-ssh-backup")
    assert backup.rc == 0, backup.stdout[-3000:]
    (copied,) = stackops_result(backup)["ssh-offsite"]["offsite"]
    b2 = stackops_result(backup)["ssh-offsite"]["backup_id"]
    assert copied["copied"] == [b2] and copied["retention"]["deleted"] == [b1]
    assert sorted(os.listdir(remote)) == [b2]

    # One changed byte on the remote host: the check names the file, a fetch refuses the copy.
    objects = json.loads((remote / b2 / "stackops-copy.json").read_text())["objects"]
    dump = max(objects, key=lambda name: objects[name]["size"])
    damaged = remote / b2 / dump
    original, stat = damaged.read_bytes(), damaged.stat()
    damaged.write_bytes(original[:100] + bytes([original[100] ^ 0xFF]) + original[101:])
    os.utime(damaged, ns=(stat.st_atime_ns, stat.st_mtime_ns))  # same size and time: rsync's quick check misses it
    work = tmp_path / "work"
    second = run_steps(pg_cluster, backups, [
        step("check", "ssh_backup_info", database=DB, remote_check="sha256", **target),
        step("fetch", "ssh_backup_fetch", database=DB, dest=str(work), **target),
    ], "h-ssh-damaged")
    assert not second["check"]["ok"] and dump in " ".join(second["check"]["problems"][b2])
    assert second["fetch"]["failed"] and "damaged" in second["fetch"]["msg"] and not (work / b2).exists()

    # Without its marker the copy is unfinished: it never counts, and the next copy resumes it and resends the
    # damaged file before it writes the marker again.
    (remote / b2 / "stackops-copy.json").unlink()
    third = run_steps(pg_cluster, backups, [
        step("unfinished", "ssh_backup_info", database=DB, **target),
        step("resume", "ssh_backup_copy", backup_dir=str(backups), database=DB, backup_id=b2, **target),
        step("check", "ssh_backup_info", database=DB, remote_check="sha256", **target),
    ], "h-ssh-resume")
    assert third["unfinished"]["backups"] == [] and [e["id"] for e in third["unfinished"]["unfinished"]] == [b2]
    assert third["resume"]["copied"] == [b2] and third["resume"]["resent"] == ["%s/%s" % (b2, dump)]
    assert third["check"]["ok"] and third["check"]["latest_verified"]["id"] == b2
    assert damaged.read_bytes() == original

    # `stackops backups`: where each set lives.
    listed = run_playbook("backup.yml", inventory=hosts, extravars={"stackops_backup_action": "list"},
                          label="h-ssh-list")
    assert listed.rc == 0, listed.stdout[-3000:]
    catalog = stackops_result(listed)["ssh-offsite"]
    assert catalog["locations"][b2] == "both" and catalog["locations"][b1] == "local"
    assert catalog["offsite"][0]["target"].startswith("ssh://root@127.0.0.1:")

    # Disaster: the local backup dir is gone. Restore from the ssh target into a new database.
    shutil.rmtree(backups)
    restored = run_playbook("restore.yml", inventory=hosts, label="h-ssh-restore", extravars={
        "stackops_restore_from_remote": True, "stackops_restore_target_database": DB + "_back"})
    assert restored.rc == 0, restored.stdout[-3000:]
    result = stackops_result(restored)["ssh-offsite"]
    assert result["backup_id"] == b2 and result["from_remote"]["target"].startswith("ssh://")
    assert fingerprint(pg_cluster, DB + "_back") == before
    assert pg_cluster.password not in output_text(backup) + output_text(restored)


# Files of a copy that carry no rows: the manifest (times, sizes, table counts), the verdict and the marker.
METADATA = ("manifest.json", "verification.json", "stackops-copy.json")


def test_with_recipients_only_sets_encrypted_at_rest_go_and_restore_with_the_identity(pg_cluster, sshd, tmp_path):
    create_db(pg_cluster, DB)
    pg_cluster.sql('DROP DATABASE IF EXISTS %s_enc WITH (FORCE)' % DB)
    before = fingerprint(pg_cluster, DB)
    remote, hosts = sshd["remote"], inventory(tmp_path, pg_cluster, sshd["target"])
    recipients = {"stackops_offsite_age_recipients": [age_key(tmp_path / "age.txt")]}

    # Recipients set, the set not encrypted at rest: refused by name, nothing lands in plaintext.
    plain = run_playbook("backup.yml", inventory=hosts, extravars=recipients, label="h-ssh-plain")
    error = stackops_result(plain)["ssh-offsite"]["error"] or ""
    assert plain.rc != 0 and "is not encrypted at rest" in error and "nothing was sent" in error, error
    assert "stackops_offsite_age_recipients" in error and "stackops_backup_encrypt" in error, error
    assert not remote.exists() or not list(remote.rglob("*"))

    # Encrypted at rest: the ciphertext goes as it is.
    sealed = run_playbook("backup.yml", inventory=hosts, extravars=dict(recipients, stackops_backup_encrypt=True),
                          label="h-ssh-sealed")
    report = stackops_result(sealed)["ssh-offsite"]
    assert sealed.rc == 0 and report["encrypted"], (report.get("error"), sealed.stdout[-3000:])
    assert report["offsite"][0]["copied"] == [report["backup_id"]]
    data = [path for path in remote.rglob("*") if path.is_file() and path.name not in METADATA]
    assert data and all(path.read_bytes().startswith(b"age-encryption.org/v1") for path in data), data

    shutil.rmtree(tmp_path / "backups")
    restored = run_playbook("restore.yml", inventory=hosts, label="h-ssh-sealed-restore", extravars={
        "stackops_restore_from_remote": True, "stackops_restore_target_database": DB + "_enc",
        "stackops_offsite_age_identity_file": str(tmp_path / "age.txt")})
    assert restored.rc == 0, restored.stdout[-3000:]
    assert stackops_result(restored)["ssh-offsite"]["backup_id"] == report["backup_id"]
    assert fingerprint(pg_cluster, DB + "_enc") == before


GROUP_SOURCE_PORT = port(56664)
GROUP_EMPTY_PORT = port(56665)
GROUP_DATABASES = {
    "h_offsg_app": "CREATE TABLE public.orders (id serial PRIMARY KEY, note text);"
                   "ALTER TABLE public.orders OWNER TO h_offsg_owner;"
                   "INSERT INTO public.orders (note) SELECT 'order ' || i FROM generate_series(1, 200) AS i;"
                   "GRANT SELECT ON public.orders TO h_offsg_reader;",
    "h_offsg_reports": "CREATE TABLE public.daily (day date PRIMARY KEY, total numeric);"
                       "ALTER TABLE public.daily OWNER TO h_offsg_owner;"
                       "INSERT INTO public.daily SELECT DATE '2026-01-01' + i, i FROM generate_series(0, 29) AS i;",
}


def ssh_targets(target):
    return [dict(target, name="backuphost", type="ssh",
                 retention=dict(keep_last=1, keep_daily=0, keep_weekly=0, keep_monthly=0))]


def test_all_databases_groups_go_to_an_ssh_target_and_restore_from_it(sshd, tmp_path):
    """An ssh target beside (or instead of) S3 must not fail `backup --all-databases` after its copies: the whole
    group goes there, pruned as a group, and `restore --all-databases --from-remote` rebuilds an empty server."""
    source, empty = cluster_on(GROUP_SOURCE_PORT), cluster_on(GROUP_EMPTY_PORT)
    try:
        create_group(source, "h_offsg_", GROUP_DATABASES)
        before = dict((name, group_digests(source, name)) for name in GROUP_DATABASES)
        before_roles = roles(source, "h_offsg_")
        remote, target = sshd["remote"], sshd["target"]
        source_inventory = group_inventory(tmp_path, source, "source", "h_offsg_app", tmp_path / "group-backups",
                                           ssh_targets(target))
        reports = []
        for run in range(2):
            backup = run_playbook("backup.yml", inventory=source_inventory, label="h-ssh-group-%d" % run,
                                  extravars={"stackops_backup_all_databases": True})
            report = stackops_result(backup)["node-source"]
            assert backup.rc == 0, (report.get("error"), backup.stdout[-3000:])
            assert report["verified"] == [True] * len(GROUP_DATABASES)
            (copied,) = report["offsite"]
            assert copied["group_id"] == report["group_id"] and sorted(copied["copied"]) == sorted(report["backups"])
            reports.append(report)
        first, second = reports
        # keep_last=1 counts groups: the older group went as a whole.
        assert copied["retention"]["deleted"] == [first["group_id"]]
        assert sorted(os.listdir(remote)) == sorted(second["backups"])

        shutil.rmtree(tmp_path / "group-backups")
        restore = run_playbook("restore.yml", inventory=group_inventory(tmp_path, empty, "target", "h_offsg_app",
                                                                         tmp_path / "group-backups", ssh_targets(target)),
                               label="h-ssh-group-restore", extravars={
                                   "stackops_restore_all_databases": True, "stackops_restore_from_remote": True,
                                   "stackops_restore_confirm": True})
        restored = stackops_result(restore)["node-target"]
        assert restore.rc == 0, (restored.get("error"), restore.stdout[-3000:])
        assert restored["group_id"] == second["group_id"] and sorted(restored["restored"]) == sorted(GROUP_DATABASES)
        assert roles(empty, "h_offsg_") == before_roles
        for name in GROUP_DATABASES:
            assert group_digests(empty, name) == before[name], name
    finally:
        source.stop()
        empty.stop()
