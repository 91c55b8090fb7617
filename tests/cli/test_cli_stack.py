"""The real `stackops` executable against the real test stack: progress, JSON, exit codes, lock, history."""
import json
import signal
import socket
import subprocess
import time

import pexpect
import pytest

from cli.conftest import FAST_CHECKS
from stackops import runmodel
from support import processes
from support.cli import STACKOPS, cli_env, stackops
from support.receiver import Receiver
from support.runner import REPO

pytestmark = pytest.mark.stack
# Speed: tests that only read a full `health --json` share one run (the health_json_run fixture);
# tests about the CLI's own behaviour run health with FAST_CHECKS (the compose group only).


def _json(completed):
    """stdout must be exactly one JSON document."""
    try:
        return json.loads(completed.stdout)
    except json.JSONDecodeError:
        pytest.fail("stdout is not one JSON document:\n%s\nstderr:\n%s" % (completed.stdout, completed.stderr))


def _history(state_dir):
    listing = stackops("history", "--json", state_dir=state_dir)
    assert listing.returncode == 0, listing.stderr
    return json.loads(listing.stdout)


def _free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _waiting_for(port):
    """Health that only checks one URL and waits (up to 120 s) until it answers 200."""
    return ["-e", json.dumps({"stackops_health_checks": ["http"], "stackops_health_http_wait": True,
                              "stackops_health_http_wait_timeout": 120,
                              "stackops_health_urls": [{"name": "gate", "url": "http://127.0.0.1:%d/" % port}]})]


def _wait_for_lock_holder(state_dir, pid, deadline=60):
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        for lock in (state_dir / "locks").glob("*.lock") if (state_dir / "locks").is_dir() else []:
            try:
                holder = json.loads(lock.read_text() or "{}")
            except (OSError, json.JSONDecodeError):
                continue
            if holder.get("pid") == pid:
                return holder
        time.sleep(0.1)
    pytest.fail("process %d never took the stack lock" % pid)


def _playbook_event(state_dir, summary, kind):
    """When ansible-runner recorded the ``kind`` event of a run (ISO text with microseconds, sortable)."""
    events = runmodel.load_events(state_dir / "runs" / summary["run_id"] / "artifacts" / summary["run_id"])
    found = [event["created"] for event in events if event.get("event") == kind]
    assert found, "run %s recorded no %s event" % (summary["run_id"], kind)
    return found[0]


def test_health_json_document(stack, health_json_run):
    completed, state_dir = health_json_run
    summary = _json(completed)
    assert completed.returncode == 0, summary
    assert summary["procedure"] == "health" and summary["status"] == "successful" and summary["rc"] == 0
    assert summary["exit_code"] == 0 and isinstance(summary["duration"], float)
    assert summary["hosts"][stack.project]["failed"] == 0 and summary["hosts"][stack.project]["ok"] > 0
    assert summary["failed_tasks"] == [] and summary["check"] is False
    assert summary["tasks"]["done"] > 0
    assert (state_dir / "runs" / summary["run_id"] / "summary.json").exists()


def test_health_publishes_stackops_result(stack, health_json_run):
    """Roles publish their key facts as stackops_result (docs/cli.md); --json carries them per host."""
    summary = _json(health_json_run[0])
    assert isinstance(summary["result"].get(stack.project), dict) and summary["result"][stack.project], summary


def test_progress_on_a_terminal(stack, state_dir):
    child = pexpect.spawn(str(STACKOPS), ["health", *FAST_CHECKS, "-i", str(stack.inventory)], env=cli_env(state_dir),
                          cwd=str(REPO), encoding="utf-8", timeout=300, dimensions=(40, 160))
    child.expect(r"stackops health")
    child.expect(r"\[\d+/(\d+|\?)\] \S")  # live line: done/total and the current task
    child.expect(r"per-host results")
    child.expect(stack.project)
    child.expect(r"SUCCESSFUL(\x1b\[[0-9;]*m)*\s+health in [\d.]+s, \d+ changed, exit 0")
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0


def test_plain_progress_when_not_a_terminal(stack, state_dir):
    completed = stackops("health", *FAST_CHECKS, "-i", stack.inventory, state_dir=state_dir)
    assert completed.returncode == 0, completed.stdout + completed.stderr
    assert "\x1b[" not in completed.stdout
    task_lines = [line for line in completed.stdout.splitlines() if line.startswith("[")]
    assert len(task_lines) >= 3 and task_lines[-1].startswith("[%d/" % len(task_lines))
    assert "SUCCESSFUL  health" in completed.stdout


@pytest.mark.parametrize("argv,message", [
    (["scale", "api"], "--replicas"),
    (["health", "--no-such-flag"], "unrecognized arguments"),
    (["health", "-i", "/nonexistent/inventory"], "does not exist"),
    (["health", "-e", "stackops_db_password=x"], "run history"),
    (["health", "-e", "not-key-value"], "not key=value"),
    (["history", "show", "no-such-run"], "no run matches"),
])
def test_bad_usage_exits_2(state_dir, argv, message):
    completed = stackops(*argv, state_dir=state_dir)
    assert completed.returncode == 2, completed.stderr
    assert message in completed.stderr and completed.stdout == ""


def test_procedure_failure_exits_1_with_the_failed_task(stack, state_dir):
    stack.compose("stop", "api")
    try:
        completed = stackops("health", *FAST_CHECKS, "-i", stack.inventory, "--json", state_dir=state_dir)
    finally:
        stack.up()
    summary = _json(completed)
    assert completed.returncode == 1 and summary["status"] == "failed" and summary["exit_code"] == 1
    assert summary["hosts"][stack.project]["failed"] == 1
    failed = summary["failed_tasks"]
    assert len(failed) == 1 and failed[0]["host"] == stack.project
    assert "api" in failed[0]["message"]

    shown = stackops("history", "show", summary["run_id"], state_dir=state_dir)
    assert shown.returncode == 0 and "FAILED" in shown.stdout and failed[0]["task"] in shown.stdout


def test_unreachable_host_exits_3(tmp_path, state_dir):
    inventory = tmp_path / "unreachable.yml"
    inventory.write_text(
        "all:\n  children:\n    stacks:\n      hosts:\n        ghost:\n"
        "          ansible_connection: ssh\n          ansible_host: 127.0.0.1\n          ansible_port: 1\n"
        "          ansible_ssh_common_args: -o ConnectTimeout=5\n")
    completed = stackops("health", "-i", inventory, "--json", state_dir=state_dir)
    summary = _json(completed)
    assert completed.returncode == 3 and summary["status"] == "unreachable"
    assert summary["unreachable_hosts"][0]["host"] == "ghost"
    assert summary["hosts"]["ghost"]["unreachable"] == 1


def test_lock_between_parallel_runs_and_history(stack, state_dir):
    # The holder waits for a URL that only starts answering after the two refused runs, so it outlasts them however
    # fast health gets; the others run the fast group.
    port = _free_port()
    first = subprocess.Popen([str(STACKOPS), "health", *_waiting_for(port), "-i", str(stack.inventory), "--json"],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=cli_env(state_dir))
    holder = _wait_for_lock_holder(state_dir, first.pid)
    assert holder["procedure"] == "health"

    refused = stackops("health", *FAST_CHECKS, "-i", stack.inventory, "--json", state_dir=state_dir)
    refused_summary = _json(refused)
    assert refused.returncode == 4 and refused_summary["status"] == "locked"
    assert refused_summary["lock_holder"]["pid"] == first.pid

    refused_human = stackops("health", *FAST_CHECKS, "-i", stack.inventory, state_dir=state_dir)
    assert refused_human.returncode == 4
    assert "pid %d" % first.pid in refused_human.stderr and "health" in refused_human.stderr

    # A third run with --wait, started while the holder is still blocked on its URL: it must say it waits, and only
    # then does the URL start answering, so the holder can finish.
    waiting = subprocess.Popen([str(STACKOPS), "health", *FAST_CHECKS, "-i", str(stack.inventory), "--json", "--wait"],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=cli_env(state_dir))
    announced = waiting.stderr.readline()
    assert "waiting for health" in announced, announced
    with Receiver(port):
        first_out, first_err = first.communicate(timeout=300)
        waited_out, waited_err = waiting.communicate(timeout=300)
    assert first.returncode == 0, first_err
    assert waiting.returncode == 0, waited_err
    first_summary = json.loads(first_out)
    waited_summary = json.loads(waited_out)
    # The waiting run's playbook started only after the holder's playbook had ended (ansible-runner's own event
    # times, microseconds): the order the lock promises.
    assert _playbook_event(state_dir, waited_summary, "playbook_on_start") > _playbook_event(
        state_dir, first_summary, "playbook_on_stats")

    runs = {row["run_id"]: row for row in _history(state_dir)}
    assert runs[first_summary["run_id"]]["status"] == "successful"
    assert runs[refused_summary["run_id"]]["status"] == "locked"
    assert runs[waited_summary["run_id"]]["status"] == "successful"
    assert len(runs) == 4

    table = stackops("history", state_dir=state_dir)
    assert table.returncode == 0
    for run_id in runs:
        assert run_id in table.stdout


def test_check_mode_changes_nothing(stack, state_dir):
    """`scale api --replicas 2 --check` would change the stack (it reports the change), and changes nothing."""
    before = sorted((c["Name"], c["ID"], c["State"]) for c in stack.ps())
    completed = stackops("scale", "api", "--replicas", "2", "-i", stack.inventory, "--check", "--json",
                         state_dir=state_dir)
    summary = _json(completed)
    assert completed.returncode == 0 and summary["check"] is True, completed.stdout + completed.stderr
    assert summary["changed"] > 0, summary  # the procedure would have changed something
    assert sorted((c["Name"], c["ID"], c["State"]) for c in stack.ps()) == before


def test_interrupt_exits_130(stack, state_dir):
    # The playbook must still be running when the signal comes, however fast health gets: it waits for a URL on a
    # port nobody listens on (up to 60 s).
    child = subprocess.Popen([str(STACKOPS), "health", *_waiting_for(_free_port()), "-i", str(stack.inventory), "--json"],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=cli_env(state_dir))
    _wait_for_lock_holder(state_dir, child.pid)
    processes.wait_for_descendant(child.pid, "ansible-playbook")
    child.send_signal(signal.SIGINT)
    out, err = child.communicate(timeout=120)
    assert child.returncode == 130, (out, err)
    assert json.loads(out)["status"] == "canceled"
    assert _history(state_dir)[-1]["status"] == "canceled"


def test_no_secret_in_the_state_dir(stack, state_dir):
    password = stack.password
    assert password
    env = {"PGPASSWORD": password, "STACKOPS_DEMO_SECRET": password}  # even an inherited secret env var
    # The postgres group is the one that reads the password file and logs in.
    pg_only = ["-e", '{"stackops_health_checks": ["postgres"]}']
    assert stackops("health", *pg_only, "-i", stack.inventory, "--json", state_dir=state_dir, env=env).returncode == 0
    assert stackops("health", *pg_only, "-i", stack.inventory, "-v", state_dir=state_dir, env=env).returncode == 0
    leaks = subprocess.run(["grep", "-rlF", password, str(state_dir)], capture_output=True, text=True)
    assert leaks.stdout == "", "the DB password leaked into: %s" % leaks.stdout
    assert leaks.returncode == 1
    for env_file in ("extravars", "envvars", "cmdline"):
        assert not list(state_dir.glob("runs/*/env/%s" % env_file))


def test_destructive_without_consent_is_refused(stack, state_dir):
    """No terminal and no --yes: refused before anything runs, and recorded in the history."""
    completed = stackops("maintenance", "-i", stack.inventory, "--level", "monthly", state_dir=state_dir)
    assert completed.returncode == 5, completed.stdout + completed.stderr
    assert "--yes" in completed.stderr and "VACUUM FULL" in completed.stderr
    assert not list(state_dir.glob("runs/*/artifacts"))  # no playbook ran
    as_json = stackops("maintenance", "-i", stack.inventory, "--tasks", "vacuum_full", "--json", state_dir=state_dir)
    assert as_json.returncode == 5 and _json(as_json)["status"] == "refused"
    assert [row["status"] for row in _history(state_dir)] == ["refused", "refused"]


def test_destructive_prompt_on_a_terminal_answered_no(stack, state_dir):
    child = pexpect.spawn(str(STACKOPS), ["maintenance", "-i", str(stack.inventory), "--level", "quarterly"],
                          env=cli_env(state_dir), cwd=str(REPO), encoding="utf-8", timeout=60)
    child.expect(r"VACUUM FULL.*\n.*Type 'yes' to continue: ")
    child.sendline("no")
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 5
    assert _history(state_dir)[-1]["status"] == "refused"


def test_check_mode_of_a_changing_procedure_changes_nothing(stack, state_dir):
    """`service stop --check` plans the stop; the api keeps running and serving."""
    before = {(c["Name"], c["State"]) for c in stack.ps()}
    completed = stackops("service", "stop", "api", "-i", stack.inventory, "--check", "--json", state_dir=state_dir)
    summary = _json(completed)
    assert completed.returncode == 0 and summary["check"] is True, completed.stdout + completed.stderr
    assert {(c["Name"], c["State"]) for c in stack.ps()} == before
    assert stack.http("/api/v1/records/count")[0] == 200
