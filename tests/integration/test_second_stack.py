"""Every procedure on a second stack shaped unlike the demo (examples/shop), with an inventory from `stackops init`.

examples/shop: services db/cache/backend/worker, -f docker-compose.prod.yml -f docker-compose.local.yml, two env
files, the official postgres image's contract (no POSTGRES_DB, password by POSTGRES_PASSWORD_FILE and a compose
secret), two databases (shop in UTF8, legacy in SQL_ASCII with Latin-1 bytes in a table name and in the data),
a redis, a backend on a fixed host port, no maintenance page. The inventory is written by `stackops init` here and
never edited. The tests run in file order and share one stack; each procedure is its own test so a failure names
the procedure.
"""
import json
import os

import pytest
import yaml

from support.digest import table_digests
from support.drill import LiveProbe, drill_resources, live_fingerprint
from support.ports import port, project
from support.shop import FILES, SHOP, ShopStack

PROJECT = os.environ.get("STACKOPS_SHOP_PROJECT", project("h2-shop"))
DB_PORT = int(os.environ.get("STACKOPS_SHOP_DB_PORT", port(56220)))
BACKEND_PORT = int(os.environ.get("STACKOPS_SHOP_BACKEND_PORT", port(56221)))
DATABASES = ("shop", "legacy")
RUN = {}  # what earlier tests found, for the later ones


@pytest.fixture(scope="module")
def shop(docker_engine, tmp_path_factory):
    stack = ShopStack(tmp_path_factory.mktemp("shop"), PROJECT, DB_PORT, BACKEND_PORT)
    stack.up()
    yield stack
    stack.teardown()


def checksums(shop, dbname):
    """{schema.table: (rows, md5 of the sorted rows)} of every user table."""
    with shop.connect(dbname) as conn:
        return table_digests(conn)


def encoding(shop, dbname):
    with shop.connect("postgres") as conn:
        row = conn.execute("SELECT pg_encoding_to_char(encoding) FROM pg_database WHERE datname = %s", (dbname,)).fetchone()
    return row[0] if row else None


def test_init_writes_an_inventory_without_the_password(shop):
    checked = shop.stackops(*shop.init_args(), "--check")
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert not (shop.inventory / "hosts.yml").exists(), "--check wrote files"
    assert "database service: db" in checked.stdout and "legacy (SQL_ASCII" in checked.stdout, checked.stdout

    written = shop.stackops(*shop.init_args())
    assert written.returncode == 0, written.stdout + written.stderr
    group_vars = (shop.inventory / "group_vars" / "stacks.yml").read_text()
    for text in (checked.stdout, checked.stderr, written.stdout, written.stderr, group_vars,
                 (shop.inventory / "hosts.yml").read_text()):
        assert shop.password not in text, "the password leaked"
    found = yaml.safe_load(group_vars)
    assert found["stackops_db_service"] == "db" and found["stackops_db_port"] == DB_PORT
    assert found["stackops_db_name"] == "shop" and found["stackops_db_user"] == "shop"
    assert found["stackops_db_password_file"] == str(SHOP / "secrets" / "db_password")
    assert found["stackops_compose_project_name"] == PROJECT
    assert found["stackops_compose_files"] == [str(path) for path in FILES]
    assert found["stackops_writer_services"] == ["backend", "worker"]
    assert found["stackops_not_rollable_services"] == ["backend", "db"]
    assert found["stackops_incident_api_service"] == "backend"
    assert found["stackops_health_urls"] == [{"name": "backend", "url": "http://127.0.0.1:%d/healthz" % BACKEND_PORT}]
    assert sorted(found["stackops_maintenance_databases"]) == ["legacy", "shop"]

    again = shop.stackops(*shop.init_args())
    assert again.returncode == 2 and "pass --force" in again.stderr, again.stdout + again.stderr


def test_startup_from_stopped(shop):
    shop.compose("stop")
    summary = shop.procedure("startup")
    assert summary["status"] == "successful"
    assert all(row.get("State") == "running" for name in ("db", "cache", "backend", "worker")
               for row in shop.containers(name))


def test_health_is_green_with_no_edits(shop):
    summary = shop.procedure("health")
    result = summary["result"][PROJECT]
    assert result["severity"] in ("OK", "WARNING") and result["counts"]["critical"] == 0, result


def test_backup_every_database_verified(shop):
    RUN["before"] = dict((name, checksums(shop, name)) for name in DATABASES)
    assert any("gr\xf6\xdfe" in table for table in RUN["before"]["legacy"]), RUN["before"]["legacy"]
    result = shop.procedure("backup", "--all-databases")["result"][PROJECT]
    assert sorted(result["databases"]) == ["legacy", "postgres", "shop"], result
    assert result["verified"] == [True] * len(result["databases"]), result
    RUN["backups"] = dict((name, backup) for name, backup in zip(result["databases"], result["backups"]) if name in DATABASES)
    listing = shop.procedure("backups", "-e", "stackops_backup_database=legacy")["result"][PROJECT]
    assert [item["id"] for item in listing["backups"] if item.get("verified")][:1] == [RUN["backups"]["legacy"]], listing

    table = shop.stackops("backups", "-i", shop.inventory)
    assert table.returncode == 0, table.stderr
    for column in ("id", "database", "age", "size", "verified", "rows"):
        assert column in table.stdout, table.stdout
    assert "[{" not in table.stdout and RUN["backups"]["shop"] in table.stdout, table.stdout


@pytest.mark.parametrize("name", DATABASES)
def test_restore_into_a_new_database(shop, name):
    if name not in RUN.get("backups", {}):
        pytest.fail("no verified backup of %s from the backup test" % name)
    target = "%s_restored" % name
    shop.procedure("restore", "--backup-id", RUN["backups"][name], "--target-db", target)
    assert checksums(shop, target) == RUN["before"][name]
    assert encoding(shop, target) == encoding(shop, name)


@pytest.mark.parametrize("name", DATABASES)
def test_restore_replace(shop, name):
    if name not in RUN.get("backups", {}):
        pytest.fail("no verified backup of %s from the backup test" % name)
    result = shop.procedure("restore", "--backup-id", RUN["backups"][name], "--target-db", name, "--replace",
                       "--yes")["result"][PROJECT]
    assert checksums(shop, name) == RUN["before"][name]
    assert encoding(shop, name) == ("SQL_ASCII" if name == "legacy" else "UTF8")
    # The writers are stopped while the database they use (stackops_db_name) is replaced, and only then.
    writers = ["backend", "worker"] if name == "shop" else []
    assert sorted(result["services_stopped"]) == sorted(result["services_restarted"]) == writers, result
    assert all(row.get("State") == "running" for row in shop.containers("backend") + shop.containers("worker"))


def test_drill_on_the_restored_copy_while_the_shop_serves(shop):
    """`stackops drill` (docs/drill.md) on the inventory `stackops init` wrote: db, cache, backend and worker come up
    in project <project>-drill on the restored `shop` set and pass the drill's checks, while the live backend keeps
    answering and none of its containers, volumes or networks changes. The human summary is text, not a repr."""
    if "shop" not in RUN.get("backups", {}):
        pytest.fail("no verified backup of shop from the backup test")
    orders = RUN["before"]["shop"]["public.orders"][0]
    backend = "http://127.0.0.1:%d" % BACKEND_PORT
    checks = {"stackops_drill_checks": [
        # SQL checks run after the HTTP ones, so the order placed below is there too.
        {"name": "orders restored", "sql": "select count(*) > %d from orders" % orders, "expect": True},
        {"name": "order count", "url": backend + "/orders/count", "json": {"orders": orders}},
        {"name": "place an order", "url": backend + "/orders", "method": "POST", "status": 201}]}
    before = live_fingerprint(PROJECT)
    with LiveProbe(backend + "/healthz") as probe:
        completed = shop.stackops("drill", "-i", shop.inventory, "-e", json.dumps(checks), timeout=900)
    probe.assert_served()
    assert completed.returncode == 0, completed.stdout[-3000:] + completed.stderr[-2000:]
    assert "{'" not in completed.stdout and "drill on %s: PASSED" % PROJECT in completed.stdout, completed.stdout
    drill = shop.procedure("status", "-e", "stackops_status_fail=false")["result"][PROJECT]["drills"]["last"]
    assert drill["status"] == "passed" and drill["backup"]["id"] == RUN["backups"]["shop"], drill
    assert {item["name"] for item in drill["checks"] if item["ok"]} == {
        "backend", "orders restored", "order count", "place an order"}, drill["checks"]
    assert drill_resources(PROJECT + "-drill") == [] and live_fingerprint(PROJECT) == before


def test_maintenance_weekly_without_a_page(shop):
    summary = shop.procedure("maintenance", "--level", "weekly")
    result = summary["result"][PROJECT]
    assert (result["maintenance_strategy"], sorted(result["writers_held"])) == ("stop_writers", ["backend", "worker"]), result
    assert result["health_after"] == "OK", result
    assert checksums(shop, "legacy") == RUN["before"]["legacy"]


def test_service_restart(shop):
    before = [row["ID"] for row in shop.containers("backend")]
    shop.procedure("service", "restart", "backend")
    after = shop.containers("backend")
    assert len(after) == 1 and after[0]["State"] == "running"
    assert [row["ID"] for row in after] == before  # restart keeps the container


def test_scale_rollable_service_and_back(shop):
    shop.procedure("scale", "worker", "--replicas", "2")
    assert [row["State"] for row in shop.containers("worker")] == ["running", "running"]
    shop.procedure("scale", "worker", "--replicas", "1")
    assert [row["State"] for row in shop.containers("worker")] == ["running"]


def test_scale_fixed_port_service_is_refused_leaving_nothing(shop):
    before = shop.containers("backend")
    summary = shop.procedure("scale", "backend", "--replicas", "2", ok=False)
    assert summary["exit_code"] != 0
    message = json.dumps(summary.get("failed_tasks")) + str(summary.get("error"))
    assert "port" in message, message
    after = shop.containers("backend")
    assert [(row["ID"], row["State"]) for row in after] == [(row["ID"], "running") for row in before]


def test_incident_api_not_responding(shop):
    shop.compose("stop", "backend")
    summary = shop.procedure("incident", "--runbook", "api_not_responding")
    actions = summary["result"][PROJECT]["actions"]
    assert [(item["name"], item["done"]) for item in actions] == [("restart backend", True)], actions
    assert [row["State"] for row in shop.containers("backend")] == ["running"]
