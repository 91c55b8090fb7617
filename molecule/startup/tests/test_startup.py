"""Testinfra checks after converge: every service of the isolated stack runs healthy, in dependency order,
PostgreSQL answers and the URLs of the inventory contract answer healthy."""
import json
import os

import testinfra.utils.ansible_runner

testinfra_hosts = testinfra.utils.ansible_runner.AnsibleRunner(
    os.environ["MOLECULE_INVENTORY_FILE"]).get_hosts("all")

STACK = json.loads(open(os.path.join(os.environ["MOLECULE_EPHEMERAL_DIRECTORY"], "stack_vars.json")).read())


def compose(host, *args):
    argv = ["docker", "compose", "--project-directory", STACK["stackops_compose_project_dir"],
            "-p", STACK["stackops_compose_project_name"]]
    for env_file in STACK["stackops_compose_env_files"]:
        argv += ["--env-file", env_file]
    command = host.run(" ".join(["%s"] * len(argv + list(args))), *(argv + list(args)))
    assert command.rc == 0, command.stderr
    return command.stdout


def containers(host):
    text = compose(host, "ps", "--all", "--format", "json").strip()
    return json.loads(text) if text.startswith("[") else [json.loads(line) for line in text.splitlines() if line]


def test_every_service_running_and_healthy(host):
    rows = containers(host)
    assert sorted(row["Service"] for row in rows) == ["api", "frontend", "postgres"]
    for row in rows:
        assert (row["State"], row["Health"]) == ("running", "healthy"), row


def test_services_started_in_dependency_order(host):
    started = {}
    for row in containers(host):
        inspect = host.run("docker inspect --format '{{.State.StartedAt}}' %s", row["ID"])
        assert inspect.rc == 0, inspect.stderr
        started[row["Service"]] = inspect.stdout.strip()
    # RFC 3339 timestamps of one engine in UTC compare as strings.
    assert started["postgres"] < started["api"] < started["frontend"], started


def test_postgres_answers(host):
    password = host.file(STACK["stackops_db_password_file"]).content_string.strip()
    out = compose(host, "exec", "-T", "-e", "PGPASSWORD=" + password, "postgres", "psql", "-h", "127.0.0.1", "-U", STACK["stackops_db_user"],
                  "-d", STACK["stackops_db_name"], "-tAc", "SELECT 1")
    assert out.strip() == "1"


def test_urls_answer_healthy(host):
    for check in STACK["stackops_health_urls"]:
        command = host.run("curl -fsS --max-time 5 %s", check["url"])
        assert command.rc == 0, "%s: %s" % (check["url"], command.stderr)
        if "json" in check:
            body = json.loads(command.stdout)
            for path, expected in check["json"].items():
                value = body
                for key in path.split("."):
                    value = value[key]
                assert value == expected, (check["url"], path, value)
