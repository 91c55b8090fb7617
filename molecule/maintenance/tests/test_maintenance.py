"""Testinfra checks after converge: the bloat is gone, the data is intact, PostgreSQL still serves."""
import os

import testinfra.utils.ansible_runner

testinfra_hosts = testinfra.utils.ansible_runner.AnsibleRunner(
    os.environ["MOLECULE_INVENTORY_FILE"]).get_hosts("all")


def psql(host, query):
    password = host.file("/run/stackops/db_password").content_string.strip()
    command = host.run("env PGPASSWORD=%s psql -h 127.0.0.1 -U app -d appdb -tAc %s", password, query)
    assert command.rc == 0, command.stderr
    return command.stdout.strip()


def test_postgres_serves(host):
    assert host.run("pg_isready -h 127.0.0.1 -U app -d appdb").rc == 0


def test_rows_kept_and_dead_tuples_gone(host):
    assert psql(host, "SELECT count(*) FROM bloated") == "5000"
    assert psql(host, "SELECT n_dead_tup FROM pg_stat_user_tables WHERE relname = 'bloated'") == "0"
    assert psql(host, "SELECT last_vacuum IS NOT NULL FROM pg_stat_user_tables WHERE relname = 'bloated'") == "t"
