"""Every database of a server backed up as one group: the source server's roles and databases, and what a restored
server must show of them (roles and memberships, database and table owners, grants, rows)."""
import sys

import yaml
from psycopg import sql

from .digest import grants, table_digests
from .pgcluster import PgCluster


def create_group(cluster, prefix, databases):
    """Roles ``<prefix>owner`` (LOGIN CREATEDB) and ``<prefix>reader`` (NOLOGIN, granted to the owner), and
    ``databases`` ({name: schema SQL}) owned by the owner; whatever an earlier run left of them is dropped first."""
    owner, reader = sql.Identifier(prefix + "owner"), sql.Identifier(prefix + "reader")
    with cluster.connect() as conn:
        for name in databases:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
        conn.execute(sql.SQL("DROP ROLE IF EXISTS {}, {}").format(reader, owner))
        conn.execute(sql.SQL("CREATE ROLE {} LOGIN CREATEDB").format(owner))
        conn.execute(sql.SQL("CREATE ROLE {} NOLOGIN").format(reader))
        conn.execute(sql.SQL("GRANT {} TO {}").format(reader, owner))
        for name in databases:
            conn.execute(sql.SQL("CREATE DATABASE {} OWNER {}").format(sql.Identifier(name), owner))
    for name, schema in databases.items():
        with cluster.connect(name) as conn:
            conn.execute(schema)


def group_digests(cluster, dbname):
    """Each table's owner, rows and their md5, and the grants: what a group restore must bring back of a database."""
    with cluster.connect(dbname) as conn:
        out = table_digests(conn, owners=True)
        out["acl"] = grants(conn)
    return out


def roles(cluster, prefix):
    """(name, can log in, can create databases, [roles it is a member of]) of every role named ``prefix``...."""
    pattern = prefix.replace("\\", "\\\\").replace("_", "\\_").replace("%", "\\%") + "%"
    return cluster.sql(
        "SELECT r.rolname, r.rolcanlogin, r.rolcreatedb, coalesce(array_agg(g.rolname ORDER BY g.rolname) "
        "FILTER (WHERE g.rolname IS NOT NULL), '{}') FROM pg_roles r LEFT JOIN pg_auth_members m ON m.member = r.oid "
        "LEFT JOIN pg_roles g ON g.oid = m.roleid WHERE r.rolname LIKE %s GROUP BY 1, 2, 3 ORDER BY 1",
        params=(pattern,))


def cluster_on(port=None):
    """A fresh, empty server (started): the source of a group, or the server a disaster recovery rebuilds."""
    cluster = PgCluster()
    if port:
        cluster.port = port  # a test file's own port range: tests of other areas run beside it
    return cluster.start()


def group_inventory(tmp_path, cluster, name, database, backup_dir, targets):
    """An inventory of one host ``node-<name>`` whose stack's database server is ``cluster`` (``database`` its
    stackops_db_name), backing up every database but postgres into ``backup_dir`` and off-site to ``targets``;
    tools on the host, no services to stop or check. Returns its path."""
    project = tmp_path / ("project-" + name)
    project.mkdir(exist_ok=True)
    host = dict(
        ansible_connection="local", ansible_python_interpreter=sys.executable,
        stackops_db_host=cluster.host, stackops_db_port=cluster.port, stackops_db_user=cluster.user,
        stackops_db_password=cluster.password, stackops_db_name=database, stackops_db_service="db",
        stackops_compose_project_dir=str(project), stackops_backup_dir=str(backup_dir),
        stackops_backup_tools_location="host", stackops_restore_tools_location="host",
        stackops_restore_stop_services=[], stackops_health_urls=[], stackops_offsite_targets=targets,
        stackops_backup_exclude_databases=["postgres"])
    path = tmp_path / ("inventory-%s.yml" % name)
    path.write_text(yaml.safe_dump({"stacks": {"hosts": {"node-" + name: host}}}))
    return path

