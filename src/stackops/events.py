"""Turns ansible-runner job events into progress and a run summary (pure logic, no I/O)."""

RESULT_KEY = "stackops_result"
GENERIC_MESSAGES = ("non-zero return code", "MODULE FAILURE", "See stdout/stderr for the exact error")
# Ansible's own argument check at the start of each role: not a step of the procedure, so not a step of the progress.
VALIDATION_ACTIONS = ("validate_argument_spec", "ansible.builtin.validate_argument_spec")
VALIDATION_TASK_PREFIX = "Validating arguments against arg spec"
STAT_KEYS = (("ok", "ok"), ("changed", "changed"), ("failures", "failed"), ("dark", "unreachable"),
             ("skipped", "skipped"), ("rescued", "rescued"), ("ignored", "ignored"))


def _merge(target, source):
    for key, value in source.items():
        if isinstance(value, dict) and isinstance(target.get(key), dict):
            _merge(target[key], value)
        else:
            target[key] = value
    return target


def failure_message(res):
    """The most useful one-line reason from a failed task result."""
    if not isinstance(res, dict):
        return str(res)
    message = res.get("msg") or ""
    items = res.get("results")
    if isinstance(items, list) and (not message or "items failed" in message.lower()):
        item_messages = [failure_message(item) for item in items if isinstance(item, dict) and item.get("failed")]
        if item_messages:
            message = "; ".join(item_messages)
    detail = str(res.get("stderr") or "").strip()
    if message in GENERIC_MESSAGES and detail:
        # "non-zero return code" alone says nothing; the command's own last words do.
        message = "%s: %s" % (message, detail.splitlines()[-1])
    if not message:
        message = (res.get("stderr") or res.get("stdout") or res.get("exception") or "").strip()
    if not message and res.get("rc") not in (None, 0):
        message = "exited with rc %s" % res.get("rc")
    return str(message).strip() or "failed (no message)"


def is_validation_task(data):
    """True for the argument validation ansible runs when a role starts (hidden from the progress line)."""
    action = str(data.get("resolved_action") or data.get("task_action") or "")
    name = str(data.get("task") or data.get("name") or "")
    return action in VALIDATION_ACTIONS or name.startswith(VALIDATION_TASK_PREFIX)


class RunTracker:
    """Follows one playbook run: the current task, tasks done, per-host outcomes and the procedure result."""

    def __init__(self, words=None):
        # How a message is said to whoever watches the run (the CLI: wording.cli_words); unchanged by default.
        self.words = words or (lambda text: text)
        self.play = None
        self.task = None
        self.role = None
        self.host = None
        self.tasks_done = 0
        # Never guessed: None shows as "?" (a total from `--list-tasks` missed dynamic includes and cost a start-up).
        self.tasks_total = None
        self.hidden_task = False
        self.host_stats = {}
        self.live_counts = {}
        self.failed_tasks = []
        self.unreachable = []
        self.stats_seen = False
        self.artifact_result = {}
        self.fact_results = {}
        self.warnings = []

    def _count(self, host, outcome):
        counts = self.live_counts.setdefault(host, {"ok": 0, "changed": 0, "failed": 0, "unreachable": 0,
                                                     "skipped": 0})
        counts[outcome] += 1

    def handle(self, event):
        """Consume one event; returns a short description of what happened for verbose output, or None."""
        kind = event.get("event")
        data = event.get("event_data") or {}
        host = data.get("host")
        if kind == "playbook_on_play_start":
            self.play = data.get("play") or data.get("name")
            return "PLAY %s" % self.play
        if kind in ("playbook_on_task_start", "playbook_on_handler_task_start"):
            self.hidden_task = is_validation_task(data)
            if self.hidden_task:
                return None
            self.tasks_done += 1
            self.task = data.get("task") or data.get("name")
            self.role = data.get("role")
            self.host = None
            return None
        if kind == "runner_on_start":
            self.host = host
            return None
        res = data.get("res") or {}
        if kind == "runner_on_ok":
            self._count(host, "changed" if res.get("changed") else "ok")
            facts = res.get("ansible_facts") or {}
            if isinstance(facts.get(RESULT_KEY), dict):
                self.fact_results[host] = facts[RESULT_KEY]
            return "%s: %s" % ("changed" if res.get("changed") else "ok", host)
        if kind == "runner_on_skipped":
            self._count(host, "skipped")
            return "skipped: %s" % host
        if kind == "runner_on_failed":
            message = self.words(failure_message(res))
            if data.get("ignore_errors"):
                return "failed (ignored): %s: %s" % (host, message)
            self._count(host, "failed")
            self.failed_tasks.append({"host": host, "task": data.get("task"), "role": data.get("role") or None,
                                      "action": data.get("task_action"), "message": message})
            return "FAILED: %s: %s" % (host, message)
        if kind == "runner_on_unreachable":
            self._count(host, "unreachable")
            message = self.words(failure_message(res))
            self.unreachable.append({"host": host, "task": data.get("task"), "message": message})
            return "UNREACHABLE: %s: %s" % (host, message)
        if kind == "warning":
            self.warnings.append((event.get("stdout") or "").strip())
            return None
        if kind == "playbook_on_stats":
            self._take_stats(data)
            return None
        return None

    def _take_stats(self, data):
        self.stats_seen = True
        hosts = set()
        for source, _ in STAT_KEYS:
            hosts.update((data.get(source) or {}).keys())
        hosts.update((data.get("processed") or {}).keys())
        for host in sorted(hosts):
            self.host_stats[host] = {name: int((data.get(source) or {}).get(host, 0)) for source, name in STAT_KEYS}
        artifact = data.get("artifact_data") or {}
        if isinstance(artifact.get(RESULT_KEY), dict):
            self.artifact_result = artifact[RESULT_KEY]
        # A failure later rescued by a block is not a failure of the procedure.
        for failure in self.failed_tasks:
            stats = self.host_stats.get(failure["host"])
            if stats and stats["failed"] == 0 and stats["rescued"] > 0:
                failure["rescued"] = True

    @property
    def hosts(self):
        return self.host_stats if self.stats_seen else {
            host: dict(counts, rescued=0, ignored=0) for host, counts in self.live_counts.items()}

    @property
    def changed_total(self):
        return sum(stats.get("changed", 0) for stats in self.hosts.values())

    @property
    def result(self):
        """The procedure's stackops_result, per host.

        Convention: roles publish `stackops_result: {<inventory_hostname>: {...}}` with
        ansible.builtin.set_stats (per_host: false, aggregate: true), which lands in the
        playbook_on_stats artifact_data (and in AWX job artifacts). A stackops_result fact set
        with set_fact is accepted too and keyed by the host that set it.
        """
        merged = {}
        for host, value in self.fact_results.items():
            merged[host] = dict(value)
        if self.artifact_result:
            known_hosts = set(self.hosts) | set(self.fact_results)
            keyed_by_host = all(isinstance(v, dict) for v in self.artifact_result.values()) and (
                set(self.artifact_result) <= known_hosts)
            if keyed_by_host:
                for host, value in self.artifact_result.items():
                    _merge(merged.setdefault(host, {}), value)
            else:
                # Published without a host key: a result for the whole run.
                merged = _merge(merged, {"_run": self.artifact_result}) if merged else {"_run": dict(
                    self.artifact_result)}
        return merged

    @property
    def real_failures(self):
        return [failure for failure in self.failed_tasks if not failure.get("rescued")]

    def outcome(self, runner_status):
        """'successful' | 'failed' | 'unreachable' | 'canceled' | 'timeout'."""
        if runner_status in ("canceled", "timeout"):
            return runner_status
        if any(stats.get("unreachable") for stats in self.hosts.values()) or self.unreachable:
            return "unreachable"
        if runner_status == "successful" and self.stats_seen and not self.real_failures:
            return "successful"
        return "failed"
