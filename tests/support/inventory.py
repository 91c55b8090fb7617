"""Inventories for tests: one local host whose settings sit in group_vars (the layout `stackops init` writes), or
one host whose database is a test cluster reached with the host's PostgreSQL tools."""
import json
import sys

import yaml


def write_inventory(path, host, group_vars):
    """An inventory directory at ``path``: host ``host`` (local connection, the controller's Python) in group
    ``stacks``, with ``group_vars`` as group_vars/stacks.yml."""
    (path / "group_vars").mkdir(parents=True, exist_ok=True)
    (path / "hosts.yml").write_text(
        "all:\n  children:\n    stacks:\n      hosts:\n        %s:\n          ansible_connection: local\n"
        "          ansible_python_interpreter: \"{{ ansible_playbook_python }}\"\n" % host)
    (path / "group_vars" / "stacks.yml").write_text(json.dumps(group_vars, indent=2))
    return path


def host_inventory(tmp_path, cluster, name, backup_dir, db_name, **extra):
    """An inventory file of one host ``node-<name>`` whose database is ``cluster``, dumped and restored with the
    host's PostgreSQL tools (no compose stack); ``extra`` adds or overrides host variables."""
    project = tmp_path / ("project-" + name)
    project.mkdir(exist_ok=True)
    host = dict(
        ansible_connection="local", ansible_python_interpreter=sys.executable,
        stackops_db_host=cluster.host, stackops_db_port=cluster.port, stackops_db_user=cluster.user,
        stackops_db_password=cluster.password, stackops_db_name=db_name, stackops_db_service="db",
        stackops_compose_project_dir=str(project), stackops_backup_dir=str(backup_dir),
        stackops_backup_tools_location="host", stackops_restore_tools_location="host",
        stackops_restore_stop_services=[], stackops_health_urls=[])
    host.update(extra)
    path = tmp_path / ("inventory-%s.yml" % name)
    path.write_text(yaml.safe_dump({"stacks": {"hosts": {"node-" + name: host}}}))
    return path
