"""A pytest plugin (loaded by tests/conftest.py): a run fails when it ran no test, or when a test was skipped,
xfailed or xpassed without an entry in the one allow-list file, tests/allowed-skips.txt.

A skip hides a promise nobody checked any more; it is allowed only where the allow-list says why. Each entry is
a line `<node id> -- <reason>` (the node id as pytest prints it); blank lines and lines starting with # are
comments. An entry without a reason is itself an error. STACKOPS_ALLOWED_SKIPS names another file (the runner's
own tests use it).
"""
import os
from pathlib import Path

import pytest

ALLOW_LIST = "tests/allowed-skips.txt"


def read_allow_list(path):
    """{node id: reason} of the allow-list at ``path`` (none when it does not exist), and its malformed lines."""
    allowed, problems = {}, []
    if not path.is_file():
        return allowed, problems
    for number, line in enumerate(path.read_text().splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        nodeid, dummy, reason = line.partition(" -- ")
        if not reason.strip():
            problems.append("%s:%d: %r names no reason (write `<node id> -- <reason>`)" % (path, number, line))
            continue
        allowed[nodeid.strip()] = reason.strip()
    return allowed, problems


class Outcomes:
    def __init__(self, config):
        self.config = config
        self.ran = 0
        self.unexpected = []  # (node id, outcome, why)

    def pytest_runtest_logreport(self, report):
        if hasattr(report, "wasxfail"):
            if report.when == "call" or report.skipped:
                self.unexpected.append((report.nodeid, "xpassed" if report.passed else "xfailed", report.wasxfail))
            return
        if report.skipped:
            reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
            reason = reason[len("Skipped: "):] if reason.startswith("Skipped: ") else reason
            self.unexpected.append((report.nodeid, "skipped", reason))
        elif report.when == "call":
            self.ran += 1

    @pytest.hookimpl(trylast=True)
    def pytest_sessionfinish(self, session, exitstatus):
        path = Path(os.environ.get("STACKOPS_ALLOWED_SKIPS") or Path(str(self.config.rootpath)) / ALLOW_LIST)
        allowed, problems = read_allow_list(path)
        self.problems = problems + [
            "%s %s (%s): not in %s; run it, or list it there with the reason" % (nodeid, outcome, why, path)
            for nodeid, outcome, why in self.unexpected if nodeid not in allowed]
        if self.ran == 0 and exitstatus == pytest.ExitCode.OK:
            self.problems.append("no test ran")
            session.exitstatus = pytest.ExitCode.NO_TESTS_COLLECTED
        elif self.problems and session.exitstatus == pytest.ExitCode.OK:
            session.exitstatus = pytest.ExitCode.TESTS_FAILED

    def pytest_terminal_summary(self, terminalreporter):
        for problem in getattr(self, "problems", []):
            terminalreporter.write_line("stackops outcomes: %s" % problem, red=True)


def pytest_configure(config):
    # Under pytest-xdist the controller sees every worker's reports; the workers themselves judge nothing.
    if not hasattr(config, "workerinput") and not config.option.collectonly:
        config.pluginmanager.register(Outcomes(config), "stackops-outcomes")
