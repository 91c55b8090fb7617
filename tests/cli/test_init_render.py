"""Pure CLI logic of `stackops init` and `stackops backups`: the inventory text and the backups table."""
import io

import yaml
from rich.console import Console

from stackops import init
from stackops.backups_table import backup_rows, print_backups


def found(password):
    return {
        "project": {"name": "shop", "project_dir": "/srv/shop", "services": ["backend", "db", "worker"],
                    "compose_files": ["/srv/shop/docker-compose.prod.yml"], "env_files": ["/srv/shop/shop.env"],
                    "profiles": ["ops"]},
        "db": {"service": "db", "image": "postgres:15", "reasons": ["image postgres:15"], "user": "shop",
               "database": "shop", "host": "127.0.0.1", "port": 56201, "container_port": 5432, "password": password},
        "databases": [{"name": "legacy", "encoding": "SQL_ASCII", "size_bytes": 7 << 20},
                      {"name": "postgres", "encoding": "UTF8", "size_bytes": 7 << 20},
                      {"name": "shop", "encoding": "UTF8", "size_bytes": 8 << 20}],
        "writers": {"backend": ["depends_on db"], "worker": ["environment PGHOST names db"]},
        "fixed_ports": {"backend": ["fixed host port 127.0.0.1:56210"], "db": ["fixed host port 127.0.0.1:56201"]},
        "rollable": ["worker"],
        "health_urls": [{"service": "backend", "name": "backend", "url": "http://127.0.0.1:56210/healthz",
                         "source": "healthcheck", "ok": True, "status": 200},
                        {"service": "admin", "name": "admin", "url": "http://127.0.0.1:56299/", "source": "published port",
                         "ok": False, "status": None, "error": "no response: refused"}],
        "incident_service": "backend", "incident_url": "http://127.0.0.1:56210/healthz", "problems": [],
        "password_file": None,
    }


def render(result, **options):
    files = init.render_inventory(result, "inventories/shop", dict({"backup_dir": "/var/backups/shop"}, **options))
    return files, yaml.safe_load(files["group_vars/stacks.yml"]), yaml.safe_load(files["hosts.yml"])


def test_inventory_from_a_secret_file():
    files, group_vars, hosts = render(found({"kind": "file", "host_path": "/srv/shop/secrets/pw", "via": "compose secret pw",
                                             "container_path": "/run/secrets/pw", "variable": "POSTGRES_PASSWORD_FILE"}))
    assert hosts["all"]["children"]["stacks"]["hosts"]["shop"]["ansible_connection"] == "local"
    assert group_vars["stackops_db_password_file"] == "/srv/shop/secrets/pw"
    assert group_vars["stackops_compose_profiles"] == ["ops"]
    assert group_vars["stackops_writer_services"] == ["backend", "worker"]
    assert group_vars["stackops_not_rollable_services"] == ["backend", "db"]
    assert group_vars["stackops_maintenance_databases"] == ["legacy", "shop"]
    assert group_vars["stackops_health_urls"] == [{"name": "backend", "url": "http://127.0.0.1:56210/healthz"}]
    assert group_vars["stackops_backup_dir"] == "/var/backups/shop"
    text = files["group_vars/stacks.yml"]
    assert "# Not rollable" in text and "left out: no response: refused" in text
    assert "stackops_maintenance_page_service" not in group_vars


def test_inventory_from_an_environment_password_refers_to_the_private_file():
    result = found({"kind": "environment", "variable": "POSTGRES_PASSWORD"})
    result["password_file"] = "/work/inventories/shop/db_password"
    _files, group_vars, _hosts = render(result, host_name="shop-prod")
    assert group_vars["stackops_db_password_file"] == "{{ inventory_dir }}/db_password"
    assert "stackops_db_password" not in group_vars


def test_describe_names_the_password_source_never_a_value():
    lines = init.describe(found({"kind": "environment", "variable": "POSTGRES_PASSWORD"}))
    assert "    password: POSTGRES_PASSWORD in the compose environment" in lines
    assert any(line.startswith("  not rollable: backend (fixed host port") for line in lines)


def test_backups_table_has_the_columns_and_human_values():
    listing = {"backup_dir": "/b", "database": "shop", "count": 2, "total_size_bytes": 3 << 20, "in_progress": [],
               "backups": [{"id": "shop-20260101T000000000Z", "database": "shop", "age_seconds": 7200,
                            "size_bytes": 2 << 20, "verified": True, "rows": 12345},
                           {"id": "shop-20251231T000000000Z", "database": "shop", "age_seconds": 93600,
                            "size_bytes": 1 << 20, "verified": None, "rows": None}]}
    rows = backup_rows(listing)
    assert [row[:4] for row in rows] == [("shop-20260101T000000000Z", "shop", "2h00m", "2.0 MiB"),
                                         ("shop-20251231T000000000Z", "shop", "1d02h", "1.0 MiB")]
    assert [str(row[4]) for row in rows] == ["yes", "never"] and [row[5] for row in rows] == ["12,345", "-"]
    out = io.StringIO()
    assert print_backups(Console(file=out, width=200, no_color=True), {"shop": listing})
    text = out.getvalue()
    for column in ("id", "database", "age", "size", "verified", "rows"):
        assert column in text
    assert "[{" not in text and "2 set(s), 3.0 MiB in all" in text


HOSTILE = "x\nstackops_db_service: \"{{ lookup('pipe', 'id') }}\""
ODD = ["it's \"quoted\" # not a comment", "key: value", "{% if true %}j{% endif %}{# c #}", "line\u2028break\x85end"]


def test_hostile_names_are_written_literally_comments_included(tmp_path):
    """issue 20 review 5: a database name with a newline added a key (and Jinja) to the inventory through a comment."""
    from ansible.parsing.dataloader import DataLoader
    from ansible.template import is_trusted_as_template
    result = found({"kind": "file", "host_path": "/srv/{{ x }}/pw", "via": "compose secret pw\n# evil: 1",
                    "container_path": "/run/secrets/pw", "variable": "POSTGRES_PASSWORD_FILE"})
    result["databases"] = [{"name": name, "encoding": "UTF8", "size_bytes": 1} for name in [HOSTILE] + ODD]
    result["db"]["database"] = HOSTILE
    result["writers"] = {"app\nevil_key: 1": ["depends_on db"]}
    files = init.render_inventory(result, "inventories/shop", {"backup_dir": "/var/backups/shop"})
    text = files["group_vars/stacks.yml"]
    # Every line is one line: nothing the project named starts a new one.
    for line in text.splitlines():
        assert line == "" or line.startswith(("#", "stackops_", "  ", "---")), line
    # Loaded the way Ansible loads an inventory file: what may be templated is marked trusted, !unsafe is not.
    (tmp_path / "stacks.yml").write_text(text)
    group_vars = DataLoader().load_from_file(str(tmp_path / "stacks.yml"), trusted_as_template=True)
    assert group_vars["stackops_db_service"] == "db"
    assert group_vars["stackops_db_name"] == HOSTILE and not is_trusted_as_template(group_vars["stackops_db_name"])
    assert group_vars["stackops_maintenance_databases"] == [HOSTILE] + ODD
    # Names with Jinja in them are never templated; the others hold nothing a template would change.
    assert [is_trusted_as_template(name) for name in group_vars["stackops_maintenance_databases"]] == [
        False, True, True, False, True]
    assert group_vars["stackops_db_password_file"] == "/srv/{{ x }}/pw"
    assert not is_trusted_as_template(group_vars["stackops_db_password_file"])
    assert group_vars["stackops_writer_services"] == ["app\nevil_key: 1"]
    assert "evil_key" not in group_vars and "evil" not in group_vars
    # Plain values stay plain YAML (readable by any YAML parser).
    assert yaml.safe_load(files["hosts.yml"])["all"]["children"]["stacks"]["hosts"]["shop"]
