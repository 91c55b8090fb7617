"""Procedures over real SSH: a throwaway sshd on 127.0.0.1, a managed-node Python without psycopg, and
`prepare`, health, backup and restore into a new database against a real PostgreSQL 15 (pg_cluster)."""
import shutil
import subprocess

import pytest

from support.backup import stackops_result
from support.inventory import host_inventory
from support.ports import port_range
from support.runner import run_playbook
from support.sshd import Sshd

pytestmark = pytest.mark.pg

PORTS = port_range(56300, 56390)


@pytest.fixture(scope="module")
def ssh_node(tmp_path_factory):
    """A real sshd on loopback (support/sshd.py) and a managed-node Python without psycopg."""
    root = tmp_path_factory.mktemp("h3-ssh")
    sshd = Sshd(root / "sshd", PORTS).start()
    # The managed node's Python: a fresh virtualenv without psycopg, so prepare has real work to do.
    python_dir = root / "node-python"
    subprocess.run(["/usr/bin/python3", "-m", "venv", str(python_dir)], check=True)
    yield dict(sshd=sshd, python=str(python_dir / "bin" / "python"))
    sshd.stop()
    shutil.rmtree(python_dir, ignore_errors=True)


def inventory(ssh_node, pg_cluster, tmp_path):
    sshd = ssh_node["sshd"]
    return host_inventory(
        tmp_path, pg_cluster, "ssh", tmp_path / "backups", "h3_ssh_app", ansible_connection="ssh",
        ansible_host="127.0.0.1", ansible_port=sshd.port, ansible_user="root",
        ansible_ssh_private_key_file=str(sshd.key), ansible_ssh_common_args=sshd.ssh_options(),
        ansible_python_interpreter=ssh_node["python"])


def test_prepare_health_backup_restore_over_ssh(ssh_node, pg_cluster, tmp_path):
    pg_cluster.sql('DROP DATABASE IF EXISTS h3_ssh_app WITH (FORCE)')
    pg_cluster.sql('DROP DATABASE IF EXISTS h3_ssh_copy WITH (FORCE)')
    pg_cluster.sql('CREATE DATABASE h3_ssh_app')
    with pg_cluster.connect("h3_ssh_app") as conn:
        conn.execute("CREATE TABLE items (id int PRIMARY KEY, name text);"
                     "INSERT INTO items SELECT i, 'item ' || i FROM generate_series(1, 250) AS i")
    probe = subprocess.run([ssh_node["python"], "-c", "import psycopg"], capture_output=True)
    assert probe.returncode != 0, "the managed node's Python must start without psycopg"
    inv = inventory(ssh_node, pg_cluster, tmp_path)

    prepared = run_playbook("prepare.yml", inventory=inv, label="h3-ssh-prepare")
    assert prepared.status == "successful", prepared.stdout
    assert prepared.result("Install psycopg for the Python Ansible uses")["changed"] is True
    assert subprocess.run([ssh_node["python"], "-c", "import psycopg"]).returncode == 0
    again = run_playbook("prepare.yml", inventory=inv, label="h3-ssh-prepare-again")
    assert again.status == "successful", again.stdout
    assert "changed=0" in again.stdout.split("PLAY RECAP")[-1], again.stdout

    # The health procedure itself, its database group (the node runs no compose project here).
    health = run_playbook("health.yml", inventory=inv, label="h3-ssh-health",
                          extravars={"stackops_health_checks": ["postgres"]})
    assert health.status == "successful", health.stdout
    assert stackops_result(health)["node-ssh"]["severity"] in ("OK", "WARNING")
    checks = {check["name"]: check for check in health.result("Run the checks and aggregate them into one report")[
        "report"]["checks"]}
    assert checks["postgres readiness"]["severity"] == "OK", checks
    assert "h3_ssh_app" in checks["postgres database sizes"]["details"]["sizes"]

    backup = run_playbook("backup.yml", inventory=inv, label="h3-ssh-backup")
    assert backup.status == "successful", backup.stdout
    taken = backup.result("Take the backup")
    assert taken["changed"] and taken["verified"] is True and taken["verification"]["during_backup"] is True

    restore = run_playbook("restore.yml", inventory=inv, label="h3-ssh-restore",
                           extravars={"stackops_restore_target_database": "h3_ssh_copy",
                                      "stackops_restore_backup_id": taken["backup_id"]})
    assert restore.status == "successful", restore.stdout
    digest = "SELECT count(*), md5(string_agg(t::text, ',' ORDER BY id)) FROM items t"
    assert pg_cluster.sql(digest, "h3_ssh_copy") == pg_cluster.sql(digest, "h3_ssh_app")
