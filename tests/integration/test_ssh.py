"""Procedures over real SSH: a throwaway sshd on 127.0.0.1, a managed-node Python without psycopg, and
`prepare`, health, backup and restore into a new database against a real PostgreSQL 15 (pg_cluster)."""
import os
import shutil
import socket
import subprocess
import time

import pytest
import yaml

from backup_helpers import stackops_result
from support.ports import port_range
from support.runner import run_playbook

pytestmark = pytest.mark.pg

PORTS = port_range(56300, 56390)


def free_port_in_range():
    for port in PORTS:
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    pytest.fail("no free port in %s-%s for the test sshd" % (PORTS[0], PORTS[-1]))


@pytest.fixture(scope="module")
def ssh_node(tmp_path_factory):
    """sshd on 127.0.0.1 with its own host key, pid file and authorized_keys (nothing in /root/.ssh is touched)."""
    sshd = "/usr/sbin/sshd"
    if not os.path.exists(sshd):
        pytest.fail("%s missing: run scripts/bootstrap.sh (Debian package openssh-server)" % sshd)
    root = tmp_path_factory.mktemp("h3-ssh")
    for key in ("host_key", "client_key"):
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(root / key)], check=True)
    (root / "authorized_keys").write_text((root / "client_key.pub").read_text())
    os.chmod(root / "authorized_keys", 0o600)
    port = free_port_in_range()
    config = root / "sshd_config"
    config.write_text("\n".join([
        "ListenAddress 127.0.0.1", "Port %d" % port, "HostKey %s" % (root / "host_key"),
        "PidFile %s" % (root / "sshd.pid"), "AuthorizedKeysFile %s" % (root / "authorized_keys"),
        "PasswordAuthentication no", "KbdInteractiveAuthentication no", "PubkeyAuthentication yes",
        "PermitRootLogin prohibit-password", "UsePAM no", "StrictModes no", "Subsystem sftp internal-sftp", ""]))
    os.makedirs("/run/sshd", exist_ok=True)  # sshd's privilege separation directory
    proc = subprocess.Popen([sshd, "-D", "-e", "-f", str(config)], stdout=subprocess.DEVNULL,
                            stderr=open(root / "sshd.log", "w"))
    deadline = time.monotonic() + 10
    while True:
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                break
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            pytest.fail("sshd did not start: %s" % (root / "sshd.log").read_text())
        time.sleep(0.1)
    # The managed node's Python: a fresh virtualenv without psycopg, so prepare has real work to do.
    python_dir = root / "node-python"
    subprocess.run(["/usr/bin/python3", "-m", "venv", str(python_dir)], check=True)
    yield dict(root=root, port=port, key=root / "client_key", python=str(python_dir / "bin" / "python"))
    proc.terminate()
    proc.wait(timeout=10)
    shutil.rmtree(python_dir, ignore_errors=True)


def inventory(ssh_node, pg_cluster, tmp_path):
    project = tmp_path / "project"
    project.mkdir()
    host = dict(
        ansible_host="127.0.0.1", ansible_port=ssh_node["port"], ansible_user="root", ansible_connection="ssh",
        ansible_ssh_private_key_file=str(ssh_node["key"]),
        ansible_ssh_common_args="-o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o IdentitiesOnly=yes",
        ansible_python_interpreter=ssh_node["python"],
        stackops_db_host=pg_cluster.host, stackops_db_port=pg_cluster.port, stackops_db_user=pg_cluster.user,
        stackops_db_password=pg_cluster.password, stackops_db_name="h3_ssh_app", stackops_db_service="db",
        stackops_compose_project_dir=str(project), stackops_backup_dir=str(tmp_path / "backups"),
        stackops_backup_tools_location="host", stackops_restore_tools_location="host",
        stackops_restore_stop_services=[], stackops_health_urls=[])
    path = tmp_path / "inventory.yml"
    path.write_text(yaml.safe_dump({"stacks": {"hosts": {"node": host}}}))
    return path


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
    assert stackops_result(health)["node"]["severity"] in ("OK", "WARNING")
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
