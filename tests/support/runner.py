"""Run real playbooks and modules through ansible-runner, the way the CLI and AWX do."""
import json
import os
import sys
import uuid
from pathlib import Path

import ansible_runner
import yaml

REPO = Path(__file__).resolve().parents[2]
OUTPUT = REPO / "tests" / "output"


class RunResult:
    """The outcome of one ansible-runner run, with helpers to read task results."""

    def __init__(self, runner, private_data_dir):
        self.runner = runner
        self.private_data_dir = Path(private_data_dir)
        self.status = runner.status
        self.rc = runner.rc
        self.events = list(runner.events)

    def task_results(self, task_name=None, event_types=("runner_on_ok", "runner_on_failed")):
        out = []
        for event in self.events:
            if event.get("event") not in event_types:
                continue
            data = event.get("event_data", {})
            if task_name is None or data.get("task") == task_name:
                out.append(data.get("res", {}))
        return out

    def result(self, task_name):
        results = self.task_results(task_name)
        assert results, "task %r produced no result; stdout:\n%s" % (task_name, self.stdout)
        return results[-1]

    @property
    def failed_tasks(self):
        return [e["event_data"].get("task") for e in self.events if e.get("event") == "runner_on_failed"
                and not e["event_data"].get("ignore_errors")]

    @property
    def stdout(self):
        return self.runner.stdout.read() if hasattr(self.runner.stdout, "read") else ""

    def artifact_text(self):
        """Everything ansible-runner persisted for this run, for secret scans."""
        chunks = []
        for path in self.private_data_dir.rglob("*"):
            if path.is_file():
                chunks.append(path.read_text(errors="replace"))
        return "\n".join(chunks)


def _private_dir(label):
    path = OUTPUT / "runs" / ("%s-%s" % (label, uuid.uuid4().hex[:8]))
    path.mkdir(parents=True)
    return path


def runner_env():
    return {
        "ANSIBLE_CONFIG": str(REPO / "ansible.cfg"),
        "ANSIBLE_COLLECTIONS_PATH": str(REPO / "collections"),
        "ANSIBLE_NOCOLOR": "1",
        "ANSIBLE_FORCE_COLOR": "0",
        # The venv's ansible-playbook first, even when pytest was started without activating it.
        "PATH": os.path.dirname(sys.executable) + os.pathsep + os.environ.get("PATH", ""),
    }


def run_playbook(playbook, inventory=None, extravars=None, check=False, label=None, limit=None, timeout=900):
    """Run a playbook from playbooks/ (or an absolute path) with ansible-runner."""
    playbook_path = Path(playbook)
    if not playbook_path.is_absolute():
        playbook_path = REPO / "playbooks" / playbook
    private = _private_dir(label or playbook_path.stem)
    cmdline = "--check" if check else None
    runner = ansible_runner.run(
        private_data_dir=str(private),
        project_dir=str(REPO),
        playbook=str(playbook_path),
        inventory=str(inventory) if inventory else str(REPO / "inventories" / "demo"),
        extravars=extravars or {},
        envvars=runner_env(),
        cmdline=cmdline,
        limit=limit,
        quiet=True,
        timeout=timeout,
    )
    return RunResult(runner, private)


def run_module(module, args, check=False, label=None, timeout=600):
    """Run one module task on localhost (the venv's Python) and return its result dict."""
    private = _private_dir(label or module.split(".")[-1])
    play = [{
        "name": "module under test",
        "hosts": "localhost",
        "gather_facts": False,
        "tasks": [{"name": "run %s" % module, module: args, "register": "result", "ignore_errors": True}],
    }]
    playbook = private / "module_test.yml"
    playbook.write_text(yaml.safe_dump(play, sort_keys=False))
    runner = ansible_runner.run(
        private_data_dir=str(private),
        project_dir=str(REPO),
        playbook=str(playbook),
        inventory="localhost ansible_connection=local ansible_python_interpreter=%s" % sys.executable,
        envvars=runner_env(),
        cmdline="--check" if check else None,
        quiet=True,
        timeout=timeout,
    )
    run = RunResult(runner, private)
    res = run.result("run %s" % module)
    res["_run"] = run
    return res


def dump(obj):
    return json.dumps(obj, indent=2, default=str)
