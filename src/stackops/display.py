"""Human output: live progress while a procedure runs, then a per-host results table.

On a terminal rich draws a live status line; otherwise plain lines (one per task) so logs,
cron mail and journald stay readable. In --json mode nothing here writes to stdout.
"""
import sys

from .units import human_duration

# rich is imported where it draws: it costs about 0.1 s, which --json and the plain progress of a log never need
# before the summary (execution.py loads it on the idle core while ansible-playbook starts).

STATUS_STYLE = {"successful": "bold green", "failed": "bold red", "unreachable": "bold red",
                "canceled": "bold yellow", "timeout": "bold red", "locked": "bold yellow", "refused": "bold yellow"}


def _progress_text(tracker):
    # A total is shown only when it is known to be right; a count that was passed is not.
    total = tracker.tasks_total if tracker.tasks_total and tracker.tasks_done <= tracker.tasks_total else "?"
    task = tracker.task or "starting"
    where = " on %s" % tracker.host if tracker.host else ""
    return "[%s/%s] %s%s" % (tracker.tasks_done, total, task, where)


def _shown(description, verbosity, tracker):
    """Failures always; with -v every per-host result, except those of a hidden task (a role's argument check has no
    progress line, so its "ok" would land under the previous task's)."""
    if not description:
        return False
    if description.startswith(("FAILED", "UNREACHABLE")):
        return True
    return verbosity > 0 and not tracker.hidden_task


class RichProgress:
    """A live status line on a terminal: spinner, done/total, current task and host, running counts."""

    def __init__(self, console, verbosity):
        self.console = console
        self.verbosity = verbosity
        self.tracker = None
        self.live = None

    def start(self, procedure, run_id, tracker):
        from rich.live import Live
        self.tracker = tracker
        self.console.print("[bold]stackops %s[/bold]  run %s" % (procedure, run_id))
        self.live = Live(self._render(), console=self.console, refresh_per_second=8, transient=True)
        self.live.start()

    def _render(self):
        from rich.console import Group
        from rich.spinner import Spinner
        from rich.text import Text
        counts = {"ok": 0, "changed": 0, "failed": 0, "unreachable": 0}
        for host_counts in self.tracker.live_counts.values():
            for key in counts:
                counts[key] += host_counts.get(key, 0)
        tally = Text("   ok=%(ok)d changed=%(changed)d failed=%(failed)d unreachable=%(unreachable)d" % counts,
                     style="dim")
        return Group(Spinner("dots", text=Text(_progress_text(self.tracker))), tally)

    def event(self, event, description):
        if _shown(description, self.verbosity, self.tracker):
            self.console.print("  " + description, highlight=False, markup=False)
        elif self.verbosity > 0 and event.get("event") == "playbook_on_task_start" and not self.tracker.hidden_task:
            self.console.print(_progress_text(self.tracker), highlight=False, markup=False)
        self.live.update(self._render())

    def stop(self):
        if self.live:
            self.live.stop()
            self.live = None


class PlainProgress:
    """One line per task (and per failure); per-host results too with -v."""

    def __init__(self, stream, verbosity):
        self.stream = stream
        self.verbosity = verbosity
        self.tracker = None

    def _write(self, line):
        self.stream.write(line + "\n")
        self.stream.flush()

    def start(self, procedure, run_id, tracker):
        self.tracker = tracker
        self._write("stackops %s: run %s" % (procedure, run_id))

    def event(self, event, description):
        kind = event.get("event")
        if kind in ("playbook_on_task_start", "playbook_on_handler_task_start"):
            if not self.tracker.hidden_task:
                self._write(_progress_text(self.tracker))
        elif _shown(description, self.verbosity, self.tracker):
            self._write("  " + description)

    def stop(self):
        pass


class NoProgress:
    def start(self, procedure, run_id, tracker):
        pass

    def event(self, event, description):
        pass

    def stop(self):
        pass


def make_progress(json_mode, verbosity):
    if json_mode:
        # stdout belongs to the JSON document; -v streams plain progress to stderr.
        return PlainProgress(sys.stderr, verbosity) if verbosity > 0 else NoProgress()
    if sys.stdout.isatty():
        from rich.console import Console
        return RichProgress(Console(), verbosity)
    return PlainProgress(sys.stdout, verbosity)


def print_summary(summary, stream=None, verbose=False):
    """The final report: per-host table, failures, the procedure's own summary (all of the result with -v), totals."""
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text
    stream = stream or sys.stdout
    console = Console(file=stream, highlight=False, soft_wrap=True) if stream.isatty() else Console(
        file=stream, highlight=False, no_color=True, width=200, soft_wrap=True)
    hosts = summary.get("hosts") or {}
    if hosts:
        table = Table(title="%s: per-host results" % summary["procedure"], title_justify="left")
        table.add_column("host")
        for column in ("ok", "changed", "failed", "unreachable", "skipped", "rescued"):
            table.add_column(column, justify="right")
        for host, stats in hosts.items():
            table.add_row(host, *[str(stats.get(column, 0)) for column in (
                "ok", "changed", "failed", "unreachable", "skipped", "rescued")])
        console.print(table)
    result = summary.get("result") or {}
    if summary.get("procedure") == "status":
        # The status table names each objective not met; the failed task that carries them would repeat it.
        from .recovery_view import print_status
        if print_status(console, result):
            summary = dict(summary, failed_tasks=[])
            if not verbose:
                result = {}
    for failure in summary.get("failed_tasks") or []:
        if failure.get("rescued"):
            continue
        console.print(Text("FAILED  %s | %s: %s" % (failure["host"], failure["task"], failure["message"]),
                           style="red"))
    for item in summary.get("unreachable_hosts") or []:
        console.print(Text("UNREACHABLE  %s: %s" % (item["host"], item["message"]), style="red"))
    if summary.get("procedure") == "backups":
        from .backups_table import print_backups
        if print_backups(console, result) and not verbose:
            result = {}
    if summary.get("procedure") == "drill":
        from .recovery_view import print_drill
        if print_drill(console, result) and not verbose:
            result = {}
    if result:
        from .result_view import print_results
        print_results(console, summary.get("procedure"), result, verbose=verbose)
    if summary.get("error"):
        console.print(Text(summary["error"], style="red"))
    status = summary["status"]
    line = Text()
    line.append(status.upper(), style=STATUS_STYLE.get(status, "bold"))
    line.append("  %s%s in %s, %d changed, exit %d  (run %s)" % (
        summary["procedure"], " (check mode)" if summary.get("check") else "", human_duration(summary.get("duration") or 0),
        summary.get("changed") or 0, summary["exit_code"], summary["run_id"]))
    console.print(line)
