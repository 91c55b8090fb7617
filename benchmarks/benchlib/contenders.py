"""Contenders (ways of doing one job) and the round-robin runner every benchmark uses."""
import json
import shutil
import subprocess
from pathlib import Path

from .measure import CommandFailed, median, run_timed
from .settings import REPEAT, SLOW_SECONDS, log


def du(path):
    path = Path(path)
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) if path.exists() else None


def remove(path):
    path = Path(path)
    if path.is_dir():
        shutil.rmtree(path, ignore_errors=True)
    elif path.exists():
        path.unlink()


def last_json(text):
    for line in reversed(text.strip().splitlines()):
        line = line.strip()
        if line.startswith("{"):
            try:
                return json.loads(line)
            except ValueError:
                continue
    return None


def task_results(artifact_dir):
    """(action, task name, res) of every ok/failed task in an ansible-runner artifact directory."""
    out = []
    if not artifact_dir:
        return out
    events = Path(artifact_dir) / "job_events"
    if not events.is_dir():
        return out
    for path in sorted(events.glob("*.json"), key=lambda p: int(p.name.split("-")[0])):
        try:
            event = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        if event.get("event") in ("runner_on_ok", "runner_on_failed"):
            data = event.get("event_data", {})
            out.append((data.get("task_action") or data.get("resolved_action"), data.get("task"), data.get("res") or {},
                        data.get("duration")))
    return out


class Contender:
    """One way of doing the job. run() returns a measurement dict or raises."""

    def __init__(self, key, label, kind, command=None, run=None, artifact=None, prepare=None, note=None):
        self.key, self.label, self.kind = key, label, kind
        self.command = command          # shell pipeline (str) run with pipefail
        self._run = run                 # or a callable returning a measurement dict
        self.artifact = artifact        # path whose size is the backup size
        self.prepare = prepare          # untimed preparation before each run
        self.note = note
        self.available = True
        self.reason = None
        self.runs = []
        self.errors = []

    def unavailable(self, reason):
        self.available, self.reason = False, reason
        return self

    def execute(self, env, logdir):
        if self.prepare:
            self.prepare()
        if self._run:
            return self._run()
        result = run_timed(self.command, env=env, shell=True, log=logdir / ("%s.log" % self.key))
        if self.kind == "stackops" and "--json" in self.command:
            summary = last_json(result["output"]) or {}
            result["task_durations"] = [{"task": name, "s": round(duration, 2)} for unused, name, unused2, duration in
                                        task_results(summary.get("artifacts")) if duration is not None]
        if self.artifact:
            result["size_bytes"] = du(self.artifact)
        return result

    def summary(self, db_bytes):
        wall = median([r["wall_s"] for r in self.runs])
        out = {"key": self.key, "label": self.label, "kind": self.kind, "available": self.available,
               "reason": self.reason, "command": self.command, "note": self.note, "n": len(self.runs),
               "wall_s_runs": [round(r["wall_s"], 3) for r in self.runs],
               "median_wall_s": round(wall, 3) if wall is not None else None,
               "throughput_mb_s": round(db_bytes / 2 ** 20 / wall, 1) if wall else None,
               "size_bytes": median([r.get("size_bytes") for r in self.runs]),
               "peak_pss_mib": round(max(r["peak_pss_mib"] for r in self.runs), 1) if self.runs else None,
               "errors": self.errors[-3:]}
        for extra in ("verify_s", "module_duration_s"):
            values = [r.get(extra) for r in self.runs if r.get(extra) is not None]
            if values:
                out[extra] = round(median(values), 3)
        if self.runs and self.runs[-1].get("phase_seconds"):
            out["phase_seconds_last_run"] = self.runs[-1]["phase_seconds"]
            # Median of every phase over the rounds: where the time goes, not one round's noise.
            phases = {}
            for run in self.runs:
                for name, value in (run.get("phase_seconds") or {}).items():
                    if isinstance(value, (int, float)):
                        phases.setdefault(name, []).append(value)
            out["phase_seconds_median"] = {name: round(median(values), 3) for name, values in phases.items()}
        if self.runs and self.runs[-1].get("task_durations"):
            out["task_durations_last_run"] = self.runs[-1]["task_durations"]
        if not self.available and not out["reason"]:
            out["reason"] = "failed"
        return out


def run_rounds(contenders, env, logdir, after_each=None, phase="", repeat=None, before_each=None):
    """Round-robin: every contender once per round; a contender slower than SLOW_SECONDS runs once.

    ``before_each`` (untimed) runs before every contender, e.g. to let the server settle after the last one."""
    repeat = repeat or REPEAT
    for round_no in range(1, repeat + 1):
        for contender in contenders:
            if not contender.available:
                continue
            if round_no > 1 and contender.runs and contender.runs[0]["wall_s"] > SLOW_SECONDS:
                continue
            log("%s round %d/%d: %s" % (phase, round_no, repeat, contender.label))
            if before_each:
                before_each()
            try:
                result = contender.execute(env, logdir)
            except (CommandFailed, RuntimeError, subprocess.SubprocessError, OSError) as exc:
                message = str(exc).strip()
                log("  FAILED: %s" % message[-1500:])
                contender.errors.append(error_digest(message))
                contender.unavailable("failed: %s" % short_reason(exc))
                continue
            contender.runs.append(result)
            extra = (", %.1f MB" % (result["size_bytes"] / 2 ** 20)) if result.get("size_bytes") else ""
            log("  %.1f s, peak %.0f MiB%s" % (result["wall_s"], result["peak_pss_mib"] or 0, extra))
            if after_each:
                problem = after_each(contender, result)
                if problem:
                    log("  CHECK FAILED: %s" % problem)
                    contender.runs.pop()
                    contender.errors.append(problem)
                    contender.unavailable("restored data wrong: %s" % problem)


def short_reason(exc):
    """One line for the table: the exit code and the last line the command printed."""
    if isinstance(exc, CommandFailed):
        lines = [line.strip() for line in exc.output.strip().splitlines() if line.strip()]
        errors = [line for line in lines if line.startswith(("[ERROR]", "ERROR", "FATAL", "error:", "msg:"))]
        return "rc %s: %s" % (exc.rc, ((errors or lines)[-1] if lines else "no output")[:240])
    return str(exc).strip().splitlines()[0][:240] if str(exc).strip() else type(exc).__name__


def error_digest(message, limit=4000):
    """The lines of a failure worth keeping: ansible's error and msg lines, then the tail of the output."""
    lines = message.splitlines()
    keep = [line for line in lines if line.strip().startswith(("[ERROR]", "ERROR", "FATAL", "fatal:", "msg:", "error:"))]
    text = "\n".join(keep[:20] + ["..."] + lines[-15:]) if keep else "\n".join(lines[-40:])
    return text[-limit:]


def paired(first, second):
    """Medians of two contender summaries over the rounds both ran (rounds run from 1 without gaps).

    A contender that is slow in round 1 runs only once (BENCH_SLOW_SECONDS); comparing its round-1 time
    with another's median over later, maybe quieter rounds would not be fair, so targets compare the
    common rounds. Returns (median of first, median of second, rounds) or None.
    """
    rounds = min(first.get("n") or 0, second.get("n") or 0)
    if not rounds or not first.get("wall_s_runs") or not second.get("wall_s_runs"):
        return None
    return median(first["wall_s_runs"][:rounds]), median(second["wall_s_runs"][:rounds]), rounds


def rounds_text(rounds, first, second):
    if rounds == first.get("n") == second.get("n"):
        return "median of %d round%s" % (rounds, "" if rounds == 1 else "s")
    return "paired over round%s 1%s only" % ("" if rounds == 1 else "s", "" if rounds == 1 else "-%d" % rounds)
