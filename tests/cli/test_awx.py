"""AWX/Controller integration: configure.yml, survey specs, the execution environment, an AWX-shaped run."""
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from stackops.procedures import PROCEDURES
from stackops.surveys import validate_survey
from support.runner import REPO

AWX = REPO / "awx"
BIN = Path(sys.executable).parent
SURVEYS = sorted((AWX / "surveys").glob("*.yml"))


def _tool_env():
    return dict(os.environ, PATH=str(BIN) + os.pathsep + os.environ.get("PATH", ""), ANSIBLE_NOCOLOR="1")


def _configure_vars():
    return yaml.safe_load((AWX / "configure.yml").read_text())[0]["vars"]


# ---------------------------------------------------------------- the survey validator

def _question(**overrides):
    item = {"question_name": "Q", "variable": "stackops_x", "type": "text", "required": True}
    item.update(overrides)
    return item


def _survey(*items):
    return {"name": "s", "description": "d", "spec": list(items)}


def test_a_valid_survey_passes():
    assert validate_survey(_survey(
        _question(),
        _question(variable="n", type="integer", min=0, max=5, default=2),
        _question(variable="f", type="float", min=0.5, max=1.5, default=1),
        _question(variable="c", type="multiplechoice", choices=["a", "b"], default="b"),
        _question(variable="m", type="multiselect", choices="a\nb\nc", default="a\nc"),
        _question(variable="p", type="password", default="$encrypted$"),
        _question(variable="t", type="textarea", min=0, max=10, default="short"),
    )) == []


@pytest.mark.parametrize("item,message", [
    (_question(type="string"), "type 'string' is not one of"),
    (_question(variable="1bad"), "not a valid variable name"),
    (_question(variable="with-dash"), "not a valid variable name"),
    (_question(variable="class"), "not a valid variable name"),
    (_question(required="yes"), "required must be true or false"),
    ({"question_name": "Q", "type": "text"}, "'variable' is required"),
    (_question(type="multiplechoice"), "needs a non-empty list of choices"),
    (_question(type="multiplechoice", choices=["a", "b"], default="c"), "default 'c' is not among the choices"),
    (_question(type="multiselect", choices=["a", "b"], default="a\nz"), "default 'z' is not among"),
    (_question(type="multiplechoice", choices=[True, False]), "choices must be strings"),
    (_question(type="multiplechoice", choices=["a", "a"]), "duplicates"),
    (_question(type="integer", min=5, max=1), "min 5 is greater than max 1"),
    (_question(type="integer", min=0, max=3, default=7), "default 7 is outside min/max"),
    (_question(type="integer", default=1.5), "is not an integer"),
    (_question(type="float", min="low"), "min must be a number"),
    (_question(type="text", min=0, max=3, default="toolong"), "length is outside min/max"),
    (_question(type="text", choices=["a"]), "choices only apply"),
    (_question(type="password", default="hunter2"), "clear-text default"),
])
def test_invalid_questions_are_reported(item, message):
    errors = validate_survey(_survey(item))
    assert any(message in error for error in errors), errors


def test_survey_level_rules():
    assert "spec must be a non-empty list of questions" in validate_survey({"name": "s", "description": "",
                                                                            "spec": []})
    assert "'name' is required" in validate_survey({"description": "", "spec": [_question()]})
    assert any("asked twice" in e for e in validate_survey(_survey(_question(), _question())))
    assert validate_survey(["not", "a", "mapping"])


@pytest.mark.parametrize("path", SURVEYS, ids=[p.stem for p in SURVEYS])
def test_shipped_surveys_are_valid(path):
    assert validate_survey(yaml.safe_load(path.read_text())) == []


# ---------------------------------------------------------------- configure.yml

def test_configure_playbook_syntax():
    checked = subprocess.run([str(BIN / "ansible-playbook"), "--syntax-check", str(AWX / "configure.yml")],
                             capture_output=True, text=True, env=_tool_env(), cwd=str(REPO))
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_every_procedure_has_a_job_template_with_its_survey():
    templates = {t["name"]: t for t in _configure_vars()["stackops_awx_job_templates"]}
    for procedure in PROCEDURES:
        template = templates.get("stackops %s" % procedure.name)
        assert template, "no job template for %s" % procedure.name
        assert template["playbook"] == "playbooks/%s" % procedure.playbook
        for name, value in procedure.fixed_vars.items():
            assert template["extra_vars"][name] == value
        if procedure.options or procedure.consent:
            assert "survey" in template, procedure.name
            survey = yaml.safe_load((AWX / "surveys" / template["survey"]).read_text())
            asked = {item["variable"] for item in survey["spec"]}
            # The survey asks for the procedure's key variables; consent is a question (no prompt in AWX).
            wanted = {option.variable for option in procedure.options if option.required or option.kind != "list"}
            assert wanted <= asked, (procedure.name, wanted - asked)
            if procedure.consent:
                assert procedure.consent.variable in asked
        if "survey" in template:
            assert (AWX / "surveys" / template["survey"]).is_file()


def test_schedules_are_weekly_maintenance_daily_backup_and_weekly_drill():
    variables = _configure_vars()
    schedules = {s["job_template"]: s for s in variables["stackops_awx_schedules"]}
    rrule = re.compile(r"^DTSTART;TZID=[^:]+:\d{8}T\d{6} RRULE:FREQ=(WEEKLY|DAILY);INTERVAL=1(;BYDAY=[A-Z]{2})?$")
    weekly = variables["stackops_awx_maintenance_rrule"].replace("{{ stackops_awx_timezone }}", "UTC").strip()
    daily = variables["stackops_awx_backup_rrule"].replace("{{ stackops_awx_timezone }}", "UTC").strip()
    assert rrule.match(weekly) and "FREQ=WEEKLY" in weekly and "BYDAY=SU" in weekly
    assert rrule.match(daily) and "FREQ=DAILY" in daily
    drill = variables["stackops_awx_drill_rrule"].replace("{{ stackops_awx_timezone }}", "UTC").strip()
    assert rrule.match(drill) and "FREQ=WEEKLY" in drill and "BYDAY=SA" in drill
    assert schedules["stackops maintenance"]["extra_data"]["stackops_maintenance_level"] == "weekly"
    assert "stackops backup" in schedules
    assert schedules["stackops drill"]["rrule"] == "{{ stackops_awx_drill_rrule }}"
    # Scheduled answers must be valid survey answers.
    maintenance = yaml.safe_load((AWX / "surveys" / "maintenance.yml").read_text())
    choices = {item["variable"]: item.get("choices") for item in maintenance["spec"]}
    for name, value in schedules["stackops maintenance"]["extra_data"].items():
        assert value in choices[name]


def test_project_layout_awx_expects():
    assert (REPO / "collections" / "requirements.yml").is_file()
    link = REPO / "collections" / "ansible_collections" / "stackops" / "runbooks"
    assert link.is_symlink() and link.resolve() == REPO.resolve()
    assert "collections_path = ./collections" in (REPO / "ansible.cfg").read_text()


# ---------------------------------------------------------------- execution environment

def test_execution_environment_context_builds_offline(tmp_path):
    definition = yaml.safe_load((REPO / "execution-environment.yml").read_text())
    assert definition["version"] == 3
    context = tmp_path / "context"
    created = subprocess.run([str(BIN / "ansible-builder"), "create", "-f", str(REPO / "execution-environment.yml"),
                              "-c", str(context)], capture_output=True, text=True, env=_tool_env(), cwd=str(REPO))
    assert created.returncode == 0, created.stdout + created.stderr
    containerfile = next(p for p in (context / "Containerfile", context / "Dockerfile") if p.exists())
    assert "FROM" in containerfile.read_text()
    python_requirements = (context / "_build" / "requirements.txt").read_text()
    for package in ("psycopg[binary]", "docker", "requests"):
        assert package in python_requirements
    bindep = (context / "_build" / "bindep.txt").read_text()
    assert "postgresql-client" in bindep and "zstd" in bindep
    collections = (context / "_build" / "requirements.yml").read_text()
    assert "community.docker" in collections and "kubernetes.core" in collections


# ---------------------------------------------------------------- a run the way AWX does it

@pytest.mark.stack
def test_awx_shaped_run_of_health(stack, tmp_path):
    """AWX stages project/, inventory/hosts, env/extravars and env/settings, then runs ansible-runner."""
    private = tmp_path / "awx_job_1"
    (private / "inventory").mkdir(parents=True)
    (private / "env").mkdir()
    (private / "project").symlink_to(REPO, target_is_directory=True)
    group_vars = json.loads((Path(stack.inventory) / "group_vars" / "stacks.yml").read_text())
    host_vars = {"ansible_connection": "local", "ansible_python_interpreter": sys.executable}
    (private / "inventory" / "hosts").write_text(json.dumps({"all": {"children": {"stacks": {
        "hosts": {stack.project: host_vars}, "vars": group_vars}}}}))
    # Survey answers arrive as extra vars; host load is the shared test machine's, not the stack's.
    (private / "env" / "extravars").write_text(yaml.safe_dump({
        "stackops_health_fail_on": "critical", "stackops_health_checks": ["compose", "http", "postgres"]}))
    (private / "env" / "settings").write_text(yaml.safe_dump({"job_timeout": 600, "pexpect_timeout": 5}))
    env = _tool_env()
    env.pop("ANSIBLE_CONFIG", None)
    env.pop("ANSIBLE_COLLECTIONS_PATH", None)  # the project's ansible.cfg must be enough, as in AWX
    ran = subprocess.run([str(BIN / "ansible-runner"), "run", str(private), "-p", "playbooks/health.yml",
                          "--ident", "1"], capture_output=True, text=True, env=env, timeout=600)
    assert ran.returncode == 0, ran.stdout[-3000:] + ran.stderr[-3000:]
    artifacts = private / "artifacts" / "1"
    assert (artifacts / "status").read_text() == "successful"
    assert (artifacts / "rc").read_text() == "0"
    events = [json.loads(p.read_text()) for p in sorted((artifacts / "job_events").glob("*.json"),
                                                         key=lambda p: int(p.name.split("-")[0]))]
    kinds = [event["event"] for event in events]
    assert kinds[0] == "playbook_on_start" and kinds[-1] == "playbook_on_stats"
    tasks = {event["event_data"].get("task") for event in events if event["event"] == "runner_on_ok"}
    assert "Run the checks and aggregate them into one report" in tasks
    stats = events[-1]["event_data"]
    assert stats["ok"][stack.project] > 0 and not stats["failures"] and not stats["dark"]
    skipped = [e["event_data"]["task"] for e in events if e["event"] == "runner_on_skipped"]
    assert "Fail when checks reach stackops_health_fail_on" in skipped
