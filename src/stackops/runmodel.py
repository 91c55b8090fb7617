"""What a run left behind, as plain data: its record and job events, the task timeline, health reports.

Everything comes from the run's history directory: `summary.json` (or `meta.json`), the job events
under `artifacts/<run_id>/job_events/` and the procedure's `stackops_result`. Anything named like
a secret is redacted with redact() before it is shown. No HTML here (report.py renders) and no
RPO judgement (rpo.py decides).
"""
import datetime
import json
import re
from pathlib import Path

from .errors import ReportError
from .extravars import FILE_SUFFIXES, SECRET_NAME

REDACTED = "<redacted>"
SEVERITY_RANK = {"OK": 0, "WARNING": 1, "CRITICAL": 2}
PHASE_MARKER = re.compile(r"^(Phase(s)? \d+\b.*)$")


def is_secret_name(name):
    name = str(name)
    return bool(SECRET_NAME.search(name)) and not name.lower().endswith(FILE_SUFFIXES)


def redact(value):
    """A copy with the value of every secret-named key replaced (the same names `-e` refuses)."""
    if isinstance(value, dict):
        return {key: (REDACTED if is_secret_name(key) else redact(item)) for key, item in value.items()}
    if isinstance(value, list):
        return [redact(item) for item in value]
    return value


def parse_time(text):
    """An ISO timestamp from ansible-runner (naive ones are UTC) -> epoch seconds, or None."""
    if not text:
        return None
    try:
        moment = datetime.datetime.fromisoformat(str(text).replace("Z", "+00:00"))
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=datetime.timezone.utc)
    return moment.timestamp()


def _action(data):
    return str(data.get("resolved_action") or data.get("task_action") or "")


# health_report is the module's name before 0.2.0; run histories recorded then still carry it.
HEALTH_REPORT_ACTIONS = ("stack_health_report", "health_report", "stack_health")


def _is_action(data, short_name):
    action = _action(data)
    return action == short_name or action.endswith("." + short_name)


def load_events(artifact_dir):
    """The job events of a run, in order."""
    events_dir = Path(artifact_dir) / "job_events"
    events = []
    if not events_dir.is_dir():
        return events
    for path in events_dir.glob("*.json"):
        try:
            events.append(json.loads(path.read_text()))
        except (OSError, json.JSONDecodeError):
            continue
    events.sort(key=lambda event: event.get("counter") or 0)
    return events


def load_run(run_dir):
    """(summary-or-meta record, events) of one history directory."""
    run_dir = Path(run_dir)
    record = None
    for name in ("summary.json", "meta.json"):
        path = run_dir / name
        if path.exists():
            try:
                record = json.loads(path.read_text())
                break
            except (OSError, json.JSONDecodeError):
                continue
    if record is None:
        raise ReportError("%s holds no summary.json or meta.json: not a stackops run" % run_dir)
    record.setdefault("run_id", run_dir.name)
    artifact_dir = run_dir / "artifacts" / record["run_id"]
    return record, load_events(artifact_dir)


def build_timeline(events):
    """Tasks with start/end (epoch seconds) grouped into phases: role, or the role's current 'Phase N' step."""
    tasks = []
    by_uuid = {}
    run_start = run_end = None
    play = None
    markers = {}
    for event in events:
        kind = event.get("event")
        data = event.get("event_data") or {}
        created = parse_time(event.get("created"))
        if created is not None:
            run_start = created if run_start is None else min(run_start, created)
            run_end = created if run_end is None else max(run_end, created)
        if kind == "playbook_on_play_start":
            play = data.get("play") or data.get("name") or ""
            markers = {}
            continue
        if kind in ("playbook_on_task_start", "playbook_on_handler_task_start"):
            name = data.get("task") or data.get("name") or "(unnamed task)"
            role = data.get("role") or ""
            marker = PHASE_MARKER.match(name)
            if marker:
                markers[role] = marker.group(1)
            phase = role or play or "play"
            if markers.get(role):
                phase = "%s: %s" % (phase, markers[role]) if role else markers[role]
            task = {"uuid": data.get("task_uuid"), "name": name, "role": role, "action": _action(data),
                    "phase": phase, "start": created, "end": None, "hosts": {}}
            tasks.append(task)
            if task["uuid"]:
                by_uuid[task["uuid"]] = task
            continue
        if kind.startswith("runner_on_") and kind != "runner_on_start":
            task = by_uuid.get(data.get("task_uuid")) or (tasks[-1] if tasks else None)
            if task is None:
                continue
            finished = parse_time(data.get("end")) or created
            if finished is not None:
                task["end"] = finished if task["end"] is None else max(task["end"], finished)
                run_end = finished if run_end is None else max(run_end, finished)
            outcome = kind[len("runner_on_"):]
            if outcome == "ok" and (data.get("res") or {}).get("changed"):
                outcome = "changed"
            if outcome == "failed" and data.get("ignore_errors"):
                outcome = "ignored"
            host = data.get("host") or "?"
            previous = task["hosts"].get(host)
            if previous not in ("failed", "unreachable"):
                task["hosts"][host] = outcome
    for index, task in enumerate(tasks):
        following = tasks[index + 1]["start"] if index + 1 < len(tasks) else run_end
        if task["start"] is None:
            task["start"] = following or run_start or 0.0
        if task["end"] is None:
            task["end"] = following if following is not None else task["start"]
        task["end"] = max(task["end"], task["start"])
        task["duration"] = round(task["end"] - task["start"], 3)
        task["status"] = _task_status(task["hosts"])
    phases = []
    for task in tasks:
        if phases and phases[-1]["label"] == task["phase"]:
            phases[-1]["tasks"].append(task)
        else:
            phases.append({"label": task["phase"], "tasks": [task]})
    for phase in phases:
        phase["start"] = min(t["start"] for t in phase["tasks"])
        phase["end"] = max(t["end"] for t in phase["tasks"])
        phase["duration"] = round(phase["end"] - phase["start"], 3)
        worst = _task_status({i: t["status"] for i, t in enumerate(phase["tasks"])})
        phase["status"] = worst if worst in ("failed", "unreachable") else "phase"
    if tasks:
        run_start = min(run_start if run_start is not None else tasks[0]["start"], tasks[0]["start"])
        run_end = max(run_end if run_end is not None else tasks[-1]["end"], max(t["end"] for t in tasks))
    return {"start": run_start, "end": run_end,
            "duration": round((run_end - run_start), 3) if run_start is not None and run_end is not None else 0.0,
            "phases": phases, "task_count": len(tasks)}


def _task_status(outcomes):
    values = set(outcomes.values())
    for status in ("unreachable", "failed", "changed", "ok", "ignored", "skipped"):
        if status in values:
            return status
    return "none"


def _host_results(summary):
    result = summary.get("result") or {}
    return {host: value for host, value in result.items() if isinstance(value, dict)}


def find_health(events, summary):
    """The last health report per host: the stackops_health_report fact, else the health_report or stack_health module result."""
    reports = {}
    for event in events:
        if event.get("event") != "runner_on_ok":
            continue
        data = event.get("event_data") or {}
        res = data.get("res") or {}
        host = data.get("host") or "?"
        fact = (res.get("ansible_facts") or {}).get("stackops_health_report")
        if isinstance(fact, dict) and isinstance(fact.get("checks"), list):
            reports[host] = fact
        elif any(_is_action(data, name) for name in HEALTH_REPORT_ACTIONS) and isinstance(res.get("report"), dict):
            reports[host] = res["report"]
    for host, value in _host_results(summary).items():
        candidate = value.get("health") if isinstance(value.get("health"), dict) else value
        if host not in reports and isinstance(candidate.get("checks"), list) and "severity" in candidate:
            reports[host] = candidate
    model = {}
    for host, report in reports.items():
        checks = [check for check in report.get("checks") or [] if isinstance(check, dict)]
        checks = sorted(checks, key=lambda c: -SEVERITY_RANK.get(str(c.get("severity", "")).upper(), 2))
        model[host] = {"severity": str(report.get("severity") or "OK").upper(), "counts": report.get("counts") or {},
                       "checks": checks, "failed": bool(report.get("failed")),
                       "fail_on": report.get("fail_on"), "generated_at": report.get("generated_at")}
    return model


def find_maintenance(summary):
    model = {}
    for host, value in _host_results(summary).items():
        if value.get("procedure") == "maintenance" or ("done" in value and "planned" in value):
            model[host] = value
    return model


def find_procedure(summary, procedure):
    """{host: stackops_result} of the hosts whose result is ``procedure``'s (the drill and status views)."""
    return {host: value for host, value in _host_results(summary).items() if value.get("procedure") == procedure}
