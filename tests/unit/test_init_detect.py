"""Pure detection logic of `stackops init` (module_utils/compose_detect.py) on resolved compose models.

The models are shaped as `docker compose config --format json` prints them (ports as long syntax, depends_on
as a mapping, secrets with source/target, a top-level secrets section with absolute file paths).
"""
from ansible_collections.stackops.runbooks.plugins.module_utils import compose_detect as detect


def port(published, target, host_ip="127.0.0.1"):
    return {"mode": "ingress", "host_ip": host_ip, "target": target, "published": str(published), "protocol": "tcp"}


def shop_model():
    return {
        "name": "shop",
        "services": {
            "db": {"image": "stackops-shop/db:1",
                   "environment": {"POSTGRES_USER": "shop", "POSTGRES_PASSWORD_FILE": "/run/secrets/shop_db_password"},
                   "secrets": [{"source": "shop_db_password", "target": "/run/secrets/shop_db_password"}],
                   "healthcheck": {"test": ["CMD-SHELL", "pg_isready -q -U shop"]},
                   "ports": [port(56201, 5432)]},
            "cache": {"image": "redis:7", "healthcheck": {"test": ["CMD", "redis-cli", "ping"]}},
            "backend": {"image": "shop/app:1",
                        "environment": {"DATABASE_URL": "postgresql://shop@db:5432/shop", "REDIS_ADDR": "cache:6379"},
                        "depends_on": {"db": {"condition": "service_healthy"}, "cache": {"condition": "service_healthy"}},
                        "ports": [port(56210, 8080)],
                        "healthcheck": {"test": ["CMD", "curl", "-fsS", "http://localhost:8080/healthz"]}},
            "worker": {"image": "shop/app:1", "environment": {"PGHOST": "db", "DB_PASSWORD_FILE": "/run/secrets/db"},
                       "depends_on": {"cache": {"condition": "service_healthy"}}},
        },
        "secrets": {"shop_db_password": {"name": "shop_shop_db_password", "file": "/srv/shop/secrets/db_password"}},
    }


def test_official_contract_defaults_database_to_user_and_secret_file_to_host_path():
    found = detect.detect(shop_model())
    db = found["db"]
    assert (db["service"], db["user"], db["database"], db["host"], db["port"]) == ("db", "shop", "shop", "127.0.0.1", 56201)
    assert db["password"] == {"kind": "file", "variable": "POSTGRES_PASSWORD_FILE",
                              "container_path": "/run/secrets/shop_db_password",
                              "host_path": "/srv/shop/secrets/db_password", "via": "compose secret shop_db_password"}
    assert "pg_isready healthcheck" in db["reasons"]
    assert found["problems"] == []


def test_user_defaults_to_postgres_and_short_secret_target():
    model = {"services": {"pg": {"image": "postgres:16", "environment": {"POSTGRES_PASSWORD_FILE": "/run/secrets/pw"},
                                 "secrets": [{"source": "pw"}], "ports": [port(5433, 5432, host_ip="")]}},
             "secrets": {"pw": {"file": "/p/pw.txt"}}}
    db = detect.detect(model)["db"]
    assert (db["user"], db["database"], db["host"], db["port"]) == ("postgres", "postgres", "127.0.0.1", 5433)
    assert db["password"]["host_path"] == "/p/pw.txt"
    assert db["reasons"] == ["image postgres:16", "environment POSTGRES_PASSWORD_FILE"]


def test_password_in_environment_is_named_never_copied():
    model = {"services": {"database": {"image": "postgis/postgis:15-3.4",
                                       "environment": {"POSTGRES_PASSWORD": "s3cret", "POSTGRES_DB": "gis"},
                                       "ports": [port(5432, 5432)]}}}
    db = detect.detect(model)["db"]
    assert db["password"] == {"kind": "environment", "variable": "POSTGRES_PASSWORD"}
    assert "s3cret" not in repr(detect.detect(model))
    assert db["database"] == "gis"


def test_password_file_in_a_bind_mount():
    model = {"services": {"db": {"image": "timescale/timescaledb:latest-pg15",
                                 "environment": {"POSTGRES_PASSWORD_FILE": "/secrets/pg/password"},
                                 "volumes": [{"type": "bind", "source": "/srv/app/secrets", "target": "/secrets"}],
                                 "ports": [port(5432, 5432)]}}}
    password = detect.detect(model)["db"]["password"]
    assert (password["kind"], password["host_path"]) == ("file", "/srv/app/secrets/pg/password")


def test_an_unreadable_password_is_a_problem_an_unpublished_port_is_not():
    model = {"name": "shop", "services": {"db": {"image": "postgres:15", "environment": {
        "POSTGRES_PASSWORD_FILE": "/run/x", "PGPORT": "5433"}}}}
    found = detect.detect(model)
    assert any("not readable from the host" in problem for problem in found["problems"])
    assert not any("port" in problem for problem in found["problems"]), found["problems"]
    # Reached on its compose network, looked up at connect time (pg.login_host), on the port inside the container.
    assert (found["db"]["host"], found["db"]["port"], found["db"]["published"]) == ("compose:shop/db", 5433, False)


def test_no_database_found_names_the_flag():
    problems = detect.detect({"services": {"web": {"image": "nginx"}}})["problems"]
    assert problems and "--db-service" in problems[0]


def test_writers_by_depends_on_and_by_environment_naming_the_host():
    found = detect.detect(shop_model())
    assert found["writers"] == {"backend": ["depends_on db", "environment DATABASE_URL names db"],
                                "worker": ["environment PGHOST names db"]}


def test_host_names_do_not_match_inside_other_words():
    spec = {"environment": {"MONGO_URL": "mongodb://mongo/db_x", "CACHE_HOST": "dbcache", "DB_PASSWORD_FILE": "/run/db"}}
    assert detect.writer_reasons("app", spec, "db") == []
    assert detect.writer_reasons("app", {"environment": {"DB_HOST": "db"}}, "db") == ["environment DB_HOST names db"]


def test_fixed_ports_are_not_rollable_and_ephemeral_ports_are():
    model = shop_model()
    model["services"]["worker"]["ports"] = [{"target": 9000, "published": "", "host_ip": "127.0.0.1"}]
    model["services"]["cron"] = {"image": "x", "container_name": "cron"}
    found = detect.detect(model)
    assert found["fixed_ports"] == {"backend": ["fixed host port 127.0.0.1:56210"], "cron": ["container_name cron"],
                                    "db": ["fixed host port 127.0.0.1:56201"]}
    assert found["rollable"] == ["cache", "worker"]


def test_health_url_from_healthcheck_maps_container_port_to_published_port():
    found = detect.detect(shop_model())
    assert found["health_candidates"] == [{"service": "backend", "name": "backend", "source": "healthcheck",
                                           "url": "http://127.0.0.1:56210/healthz"}]
    assert (found["incident_service"], found["incident_url"]) == ("backend", "http://127.0.0.1:56210/healthz")


def test_health_url_falls_back_to_the_published_root_and_ignores_other_hosts():
    model = {"services": {"web": {"ports": [port(8081, 80, host_ip="0.0.0.0")],
                                  "healthcheck": {"test": ["CMD-SHELL", "wget -q -O- http://api:8000/health || exit 1"]}}}}
    assert detect.health_urls(model) == [{"service": "web", "name": "web", "source": "published port 8081",
                                          "url": "http://127.0.0.1:8081/"}]


def test_chosen_db_service_and_unknown_one():
    model = shop_model()
    assert detect.detect(model, db_service="db")["db"]["service"] == "db"
    problems = detect.detect(model, db_service="nope")["problems"]
    assert problems[0].startswith("service nope (db_service) is not in the compose project")
