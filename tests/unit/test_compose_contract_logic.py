"""Pure logic of the compose contract: the one command builder and the maintenance window plan."""
import datetime

import pytest

from ansible_collections.stackops.runbooks.plugins.module_utils.compose import compose_argument_spec, compose_command
from ansible_collections.stackops.runbooks.plugins.module_utils.maintenance import LEVELS, parse_deadline, window_tasks


class Binaries:
    """What compose_command needs from AnsibleModule: where the docker CLI is."""

    def get_bin_path(self, name, required=False):
        return "/usr/bin/" + name


def test_one_builder_puts_every_project_option_before_the_command():
    params = dict(project_dir="/srv/shop", project_name="shop", env_files=["/srv/shop/.env", "/srv/shop/prod.env"],
                  compose_files=["/srv/shop/docker-compose.prod.yml", "/srv/shop/override.yml"], profiles=["jobs", "cache"])
    assert compose_command(Binaries(), params, ["ps", "--all"]) == [
        "/usr/bin/docker", "compose", "--project-directory", "/srv/shop", "-p", "shop",
        "--env-file", "/srv/shop/.env", "--env-file", "/srv/shop/prod.env",
        "-f", "/srv/shop/docker-compose.prod.yml", "-f", "/srv/shop/override.yml",
        "--profile", "jobs", "--profile", "cache", "ps", "--all"]
    assert compose_command(Binaries(), dict(), ["config"]) == ["/usr/bin/docker", "compose", "config"]
    spec = compose_argument_spec()
    assert spec["profiles"] == {"type": "list", "elements": "str", "default": []}


def test_window_tasks_from_a_level_a_list_or_a_string():
    assert [t["name"] for t in window_tasks("weekly", [])] == LEVELS["weekly"]
    assert window_tasks("weekly", "analyze, reindex") == [{"name": "analyze"}, {"name": "reindex"}]
    planned = window_tasks("none", [{"name": "reindex", "tables": ["public.t"]}], update_services=["web"])
    assert planned == [{"name": "reindex", "tables": ["public.t"]}, {"name": "rolling_update", "services": ["web"]}]
    assert window_tasks("daily", ["rolling_update"], update_services=["web"]) == [{"name": "rolling_update"}]
    with pytest.raises(ValueError, match="unknown maintenance task.*nope.*known: vacuum"):
        window_tasks("weekly", ["analyze", "nope"])
    with pytest.raises(ValueError, match="unknown maintenance level"):
        window_tasks("hourly", [])


def test_the_deadline_forms_the_window_accepts():
    start = datetime.datetime(2026, 11, 23, 21, 0, tzinfo=datetime.timezone.utc)
    assert parse_deadline("90", start=start) == start + datetime.timedelta(minutes=90)
    assert parse_deadline("2026-11-23T23:00:00Z") == datetime.datetime(2026, 11, 23, 23, 0, tzinfo=datetime.timezone.utc)
    assert parse_deadline("2026-11-24 00:00+01:00").astimezone(datetime.timezone.utc).hour == 23
    assert parse_deadline("") is None
    with pytest.raises(ValueError, match="minutes from now"):
        parse_deadline("tonight")
