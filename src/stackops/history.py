"""Run history: one ansible-runner private data dir per run under <state>/runs, rotated."""
import datetime
import json
import os
import re
import secrets
import shutil
from pathlib import Path

DEFAULT_KEEP = 100
SUMMARY = "summary.json"
META = "meta.json"
# Environment values kept in the recorded command: everything else is reduced to its name,
# because ansible-runner records the whole inherited environment and it may hold credentials.
SAFE_ENV = re.compile(r"^(PATH|HOME|USER|LOGNAME|LANG|LC_\w+|TERM|SHELL|PWD|TZ|VIRTUAL_ENV|"
                      r"ANSIBLE_(?!.*(PASS|SECRET|TOKEN|KEY))\w+|STACKOPS_(?!.*(PASS|SECRET|TOKEN|KEY))\w+|"
                      r"RUNNER_\w+|AWX_ISOLATED_DATA_DIR|JOB_ID|PYTHONPATH)$")


def keep_count():
    try:
        return max(1, int(os.environ.get("STACKOPS_HISTORY_KEEP", DEFAULT_KEEP)))
    except ValueError:
        return DEFAULT_KEEP


def now():
    return datetime.datetime.now(datetime.timezone.utc).astimezone()


def new_run_id(procedure, started=None):
    started = started or now()
    # Sortable by name: the timestamp comes first.
    return "%s-%s-%s" % (started.strftime("%Y%m%dT%H%M%S"), procedure, secrets.token_hex(2))


class History:
    def __init__(self, state_dir):
        self.state_dir = Path(state_dir)
        self.runs_dir = self.state_dir / "runs"

    def create(self, run_id, meta):
        self.state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.runs_dir.mkdir(exist_ok=True, mode=0o700)
        run_dir = self.runs_dir / run_id
        run_dir.mkdir(mode=0o700)
        (run_dir / META).write_text(json.dumps(meta, indent=2, default=str))
        return run_dir

    def finish(self, run_dir, summary):
        run_dir = Path(run_dir)
        scrub_environment(run_dir)
        tmp = run_dir / (SUMMARY + ".tmp")
        tmp.write_text(json.dumps(summary, indent=2, default=str))
        tmp.replace(run_dir / SUMMARY)
        self.rotate()

    def rotate(self, keep=None):
        keep = keep or keep_count()
        if not self.runs_dir.is_dir():
            return []
        runs = sorted(p for p in self.runs_dir.iterdir() if p.is_dir())
        removed = []
        for old in runs[:-keep] if len(runs) > keep else []:
            if not (old / SUMMARY).exists() and _still_running(old):
                continue
            shutil.rmtree(old, ignore_errors=True)
            removed.append(old.name)
        return removed

    def records(self):
        if not self.runs_dir.is_dir():
            return []
        out = []
        for run_dir in sorted(p for p in self.runs_dir.iterdir() if p.is_dir()):
            record = self.load(run_dir.name)
            if record:
                out.append(record)
        return out

    def load(self, run_id):
        run_dir = self.runs_dir / run_id
        for name in (SUMMARY, META):
            path = run_dir / name
            if path.exists():
                try:
                    record = json.loads(path.read_text())
                except (OSError, json.JSONDecodeError):
                    continue
                if name == META:
                    record.setdefault("status", "running" if _still_running(run_dir) else "aborted")
                record["run_id"] = run_id
                return record
        return None

    def run_dir(self, run_id):
        return self.runs_dir / run_id

    def find(self, ident):
        """A run by its full id, a unique prefix, or a unique suffix (the random tail)."""
        if not self.runs_dir.is_dir():
            return None, []
        names = sorted(p.name for p in self.runs_dir.iterdir() if p.is_dir())
        if ident in names:
            return ident, [ident]
        matches = [n for n in names if n.startswith(ident) or n.endswith(ident)]
        return (matches[0] if len(matches) == 1 else None), matches


def _still_running(run_dir):
    try:
        pid = json.loads((Path(run_dir) / META).read_text()).get("pid")
        if not pid:
            return False
        os.kill(int(pid), 0)
        return True
    except (OSError, ValueError, json.JSONDecodeError):
        return False


def scrub_environment(run_dir):
    """Reduce the environment ansible-runner recorded in artifacts/*/command to harmless values."""
    for command_file in Path(run_dir).glob("artifacts/*/command"):
        try:
            recorded = json.loads(command_file.read_text())
        except (OSError, json.JSONDecodeError):
            continue
        env = recorded.get("env") or {}
        recorded["env"] = {key: (value if SAFE_ENV.match(key) else "<redacted>") for key, value in env.items()}
        command_file.write_text(json.dumps(recorded, ensure_ascii=False))
    for env_list in Path(run_dir).glob("artifacts/*/env.list"):
        env_list.unlink()
