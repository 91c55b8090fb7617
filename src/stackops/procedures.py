"""The one table of procedures: playbook, flag -> extra var mapping, consent rules, examples.

Everything procedure-specific the CLI knows lives here; the logic itself lives in the playbooks.
docs/cli.md documents this table (tests/cli/test_procedures.py keeps the two in step).
"""
from dataclasses import dataclass, field

from .extravars import as_bool


@dataclass(frozen=True)
class Option:
    """A command-line flag (or positional) that sets one extra var when given."""

    dest: str
    variable: str
    help: str
    flags: tuple = ()          # empty: a positional argument named dest
    # str | int | list (comma separated) | true / false (the flag sets it; absent: role default)
    # | bool (always set: true with the flag, false without)
    kind: str = "str"
    choices: tuple = ()
    required: bool = False
    metavar: str = None

    def value(self, raw):
        if self.kind == "list":
            items = raw if isinstance(raw, list) else [raw]
            return [part.strip() for item in items for part in str(item).split(",") if part.strip()]
        if self.kind == "true":
            return True
        if self.kind == "false":
            return False
        if self.kind == "bool":
            return bool(raw)
        return raw


@dataclass(frozen=True)
class Consent:
    """A destructive variant: why it is destructive, and the extra var that carries the operator's consent."""

    variable: str
    reason: object  # callable(extravars) -> str | None

    def needed(self, extravars):
        return self.reason(extravars)


@dataclass(frozen=True)
class Procedure:
    name: str
    playbook: str
    help: str
    description: str
    options: tuple = ()
    fixed_vars: dict = field(default_factory=dict)
    consent: Consent = None
    examples: tuple = ()
    locks: bool = True  # read-only listings do not take the stack lock

    def extravars(self, args, given=None):
        """Extra vars for a run: CLI defaults, then -e values (given), then the flags actually used."""
        variables = {option.variable: False for option in self.options if option.kind == "bool"}
        variables.update(given or {})
        variables.update(self.fixed_vars)
        for option in self.options:
            raw = getattr(args, option.dest, None)
            if raw is None or raw is False or raw == []:
                continue
            variables[option.variable] = option.value(raw)
        return variables


PITR_TARGETS = ("stackops_restore_to_time", "stackops_restore_to_lsn", "stackops_restore_to_restore_point",
                "stackops_restore_to_latest")


def _restore_reason(variables):
    if any(variables.get(name) for name in PITR_TARGETS):
        return ("point-in-time recovery swaps the database service onto the recovered data "
                "(the current data is kept in a volume until you drop it)")
    if as_bool(variables.get("stackops_restore_replace")) and as_bool(variables.get("stackops_restore_all_databases")):
        return ("restore --all-databases --replace drops and recreates every database of the backup group that "
                "exists on the server")
    if as_bool(variables.get("stackops_restore_replace")):
        target = variables.get("stackops_restore_target_database") or "the application database"
        return "restore --replace drops and recreates %s" % target
    return None


def _pitr_reason(variables):
    if variables.get("stackops_pitr_action") == "enable":
        return "pitr enable restarts PostgreSQL if wal_level, max_wal_senders or max_replication_slots must change"
    return None


def _scale_reason(variables):
    replicas = variables.get("stackops_scaling_replicas")
    try:
        if replicas is not None and int(replicas) == 0:
            return "scaling %s to 0 replicas stops the service" % variables.get("stackops_scaling_service", "it")
    except (TypeError, ValueError):
        return None
    return None


EXCLUSIVE_LOCK_LEVELS = ("monthly", "quarterly")
EXCLUSIVE_LOCK_TASKS = ("vacuum_full",)


def _maintenance_reason(variables):
    level = str(variables.get("stackops_maintenance_level") or "")
    tasks = variables.get("stackops_maintenance_tasks") or []
    if isinstance(tasks, str):
        tasks = [part.strip() for part in tasks.split(",")]
    if level in EXCLUSIVE_LOCK_LEVELS:
        return "%s maintenance runs VACUUM FULL, which locks tables exclusively" % level
    for task in tasks if isinstance(tasks, list) else []:
        name = task.get("name") if isinstance(task, dict) else task
        if name in EXCLUSIVE_LOCK_TASKS:
            return "maintenance task %s locks tables exclusively" % name
        if name == "reindex" and isinstance(task, dict) and not as_bool(task.get("concurrently", True)):
            return "maintenance task reindex without concurrently locks tables exclusively"
    return None


PROCEDURES = (
    Procedure(
        name="startup",
        playbook="startup.yml",
        help="start the stack in dependency order and wait until it is healthy",
        description="Start the compose stack: database first, then the services that depend on it, "
                    "waiting for each to become healthy, and finish with a health check.",
        options=(
            Option("database_only", "stackops_startup_database_only",
                   "start only the database service (a fresh server before a disaster recovery: the app cannot be "
                   "healthy until its data is restored)", flags=("--database-only",), kind="true"),
        ),
        examples=("stackops startup", "stackops startup --check", "stackops startup --database-only",
                  "stackops startup -i inventories/prod --limit web1 -e stackops_startup_tier_timeout=300"),
    ),
    Procedure(
        name="health",
        playbook="health.yml",
        help="check containers, database and HTTP endpoints",
        description="Check that every compose service runs and is healthy, the database answers, "
                    "and each health URL returns what it should. Changes nothing.",
        examples=("stackops health", "stackops health --json | jq .result",
                  "stackops health -i inventories/prod --limit db1 -v"),
    ),
    Procedure(
        name="prepare",
        playbook="prepare.yml",
        help="install what the managed nodes need (psycopg, zstd) and check Docker and compose v2",
        description="Install psycopg for the Python interpreter Ansible uses on each node and the zstd command, "
                    "and fail with a clear message when Docker or compose v2 is missing. Second runs change nothing.",
        examples=("stackops prepare -i inventories/prod", "stackops prepare --check"),
    ),
    Procedure(
        name="service",
        playbook="service.yml",
        help="start, stop, restart, hard-restart, or roll compose services",
        description="Act on compose services and verify health after the change. rolling_restart replaces "
                    "the containers of a scaled service one at a time, each gated on health, so the frontend "
                    "keeps serving; rolling_update does the same onto a new image and rolls back to the "
                    "previous one when a new container does not get healthy.",
        options=(
            Option("action", "stackops_service_action", "what to do",
                   choices=("start", "stop", "restart", "hard_restart", "rolling_restart", "rolling_update"),
                   required=True),
            Option("services", "stackops_service_names", "compose services (comma separated), e.g. api",
                   kind="list", required=True, metavar="SERVICES"),
        ),
        examples=("stackops service restart api", "stackops service rolling_restart api",
                  "stackops service stop frontend --check", "stackops service hard_restart api,frontend"),
    ),
    Procedure(
        name="backup",
        playbook="backup.yml",
        help="take a verified database backup",
        description="Dump the database, verify the dump by restoring it into a scratch database, "
                    "and apply the retention policy.",
        options=(
            Option("database", "stackops_backup_database", "database to back up (default: the stack's)",
                   flags=("--database",), metavar="NAME"),
            Option("no_verify", "stackops_backup_verify", "skip the restore test of the new backup",
                   flags=("--no-verify",), kind="false"),
            Option("all_databases", "stackops_backup_all_databases",
                   "back up every database of the server plus roles and tablespaces, each its own verified set "
                   "under one group id", flags=("--all-databases",), kind="true"),
            Option("physical", "stackops_backup_physical",
                   "physical base backup of the whole cluster with Barman, verified (needs `stackops pitr enable`)",
                   flags=("--physical",), kind="true"),
        ),
        examples=("stackops backup", "stackops backup --no-verify --check",
                  "stackops backup --json | jq '.result[].backup_id'"),
    ),
    Procedure(
        name="backups",
        playbook="backup.yml",
        help="list the backups that exist",
        description="List the backups in the stack's backup directory with their size, age and verification state.",
        options=(
            Option("offsite", "stackops_backup_rpo_offsite",
                   "judge --rpo on the off-site copies (the worst target) instead of the local sets",
                   flags=("--offsite",), kind="true"),
        ),
        fixed_vars={"stackops_backup_action": "list"},
        examples=("stackops backups", "stackops backups --json | jq '.result'"),
        locks=False,
    ),
    Procedure(
        name="restore",
        playbook="restore.yml",
        help="restore a backup into a database",
        description="Restore a verified backup (default: the newest verified one) into a new database, or with "
                    "--replace over an existing one such as the application database (destructive: asks for "
                    "confirmation, --yes when not on a terminal), then check the stack serves again.",
        options=(
            Option("backup_id", "stackops_restore_backup_id", "backup to restore (see `stackops backups`)",
                   flags=("--backup-id",), metavar="ID"),
            Option("target_db", "stackops_restore_target_database",
                   "database to restore into (default: the one the backup was taken from)",
                   flags=("--target-db",), metavar="NAME"),
            Option("replace", "stackops_restore_replace",
                   "replace the target database if it exists (destructive); without it an existing target "
                   "makes the restore fail", flags=("--replace",), kind="bool"),
            Option("all_databases", "stackops_restore_all_databases",
                   "disaster recovery: restore a whole --all-databases group onto a server, roles and "
                   "tablespaces first", flags=("--all-databases",), kind="true"),
            Option("group_id", "stackops_restore_group_id",
                   "group to restore with --all-databases (default: the newest verified one)",
                   flags=("--group-id",), metavar="ID"),
            Option("from_remote", "stackops_restore_from_remote",
                   "fetch the backup from the off-site target (stackops_offsite_targets), check it, and restore it "
                   "from there; works with the local backup directory gone", flags=("--from-remote",), kind="true"),
            Option("to_time", "stackops_restore_to_time",
                   "point-in-time recovery of the cluster to this time, e.g. '2026-12-01 14:01:59+00'",
                   flags=("--to-time",), metavar="TIME"),
            Option("to_lsn", "stackops_restore_to_lsn", "point-in-time recovery to this WAL location",
                   flags=("--to-lsn",), metavar="LSN"),
            Option("to_restore_point", "stackops_restore_to_restore_point",
                   "point-in-time recovery to a restore point (see `stackops pitr mark`)",
                   flags=("--to-restore-point",), metavar="NAME"),
            Option("to_latest", "stackops_restore_to_latest", "recover the cluster with all WAL there is",
                   flags=("--to-latest",), kind="true"),
        ),
        consent=Consent("stackops_restore_confirm", _restore_reason),
        examples=("stackops restore --target-db appdb_check            # newest verified backup, side by side",
                  "stackops restore --backup-id appdb-20260101T030000123Z --replace --yes",
                  "stackops restore --replace --check                   # what would be replaced, nothing done"),
    ),
    Procedure(
        name="drill",
        playbook="drill.yml",
        help="restore drill: bring the application up on a restored copy beside the live stack, measure the RTO",
        description="Restore the newest verified backup (or --backup-id, --physical [--to-time], --from-remote) into "
                    "a compose project of its own (<project>-drill: the stack's compose files plus a generated "
                    "override, a fresh database volume, no host ports), start the application on it, run the health "
                    "URLs and stackops_drill_checks against it, record the result and the measured RTO, and tear it "
                    "all down. Nothing of the live stack is touched.",
        options=(
            Option("backup_id", "stackops_drill_backup_id", "backup (or with --physical base backup) to drill",
                   flags=("--backup-id",), metavar="ID"),
            Option("physical", "stackops_drill_physical",
                   "recover a physical base backup with Barman (PITR) instead of a logical set",
                   flags=("--physical",), kind="true"),
            Option("to_time", "stackops_drill_to_time", "with --physical: recover to this time, "
                   "e.g. '2026-12-01 14:01:59+00' (default: all WAL there is)", flags=("--to-time",), metavar="TIME"),
            Option("from_remote", "stackops_drill_from_remote",
                   "fetch the set (with --physical: the base backup and WAL) from the off-site target first",
                   flags=("--from-remote",), kind="true"),
            Option("keep", "stackops_drill_keep", "leave the drill running afterwards for a look",
                   flags=("--keep",), kind="true"),
            Option("teardown", "stackops_drill_teardown", "only remove a drill left running with --keep",
                   flags=("--teardown",), kind="true"),
        ),
        examples=("stackops drill", "stackops drill --backup-id appdb-20260101T030000123Z",
                  "stackops drill --physical --to-time '2026-12-01 14:01:59+00'",
                  "stackops drill --keep && stackops drill --teardown",
                  "stackops schedule install drill --when weekly"),
    ),
    Procedure(
        name="status",
        playbook="status.yml",
        help="the stack's recoverability on one screen: backups, PITR, off-site copies, drills, schedules",
        description="Services and their health, the newest verified logical and physical backup against the RPO "
                    "(stackops_rpo), the PITR window and the WAL receiver, each off-site target's newest copy, the "
                    "last restore drills with their RTO (stackops_rto) and trend, and each schedule's last run. Reads "
                    "catalogs and state files only. Exits 1 naming each objective that is not met.",
        options=(
            Option("prometheus", "stackops_status_metrics_file", "also write the status as a Prometheus textfile",
                   flags=("--prometheus",), metavar="FILE"),
        ),
        examples=("stackops status", "stackops status --json | jq .result", "stackops status --prometheus "
                  "/var/lib/node_exporter/textfile/stackops.prom", "stackops schedule install status --when hourly"),
        locks=False,
    ),
    Procedure(
        name="pitr",
        playbook="pitr.yml",
        help="point-in-time recovery: enable or disable WAL streaming, show status, mark a restore point",
        description="Continuous WAL archiving with Barman in streaming mode (docs/pitr.md). enable prepares "
                    "PostgreSQL (settings, replication role, pg_hba, slot) and starts the WAL receiver; it "
                    "restarts PostgreSQL only when a setting needs it, with consent (--yes). disable undoes it "
                    "and drops the slot. status shows the receiver, the slot, base backups and the recoverable "
                    "window. mark NAME creates a restore point for `stackops restore --to-restore-point NAME`.",
        options=(
            Option("action", "stackops_pitr_action", "what to do",
                   choices=("enable", "disable", "status", "mark"), required=True),
            Option("name", "stackops_pitr_mark_name", "restore point name (with mark)", metavar="NAME"),
        ),
        consent=Consent("stackops_pitr_allow_restart", _pitr_reason),
        examples=("stackops pitr enable --yes", "stackops pitr enable --check", "stackops pitr status --json",
                  "stackops pitr mark before-migration-42", "stackops backup --physical",
                  "stackops restore --to-time '2026-12-01 14:01:59+00' --yes",
                  "stackops restore --to-restore-point before-migration-42 --check"),
    ),
    Procedure(
        name="maintenance",
        playbook="maintenance.yml",
        help="run database maintenance (vacuum, analyze, reindex) in a window",
        description="Put the frontend into maintenance mode when needed, run the maintenance tasks of the "
                    "level, and bring it back. Monthly and quarterly levels (and task vacuum_full) take "
                    "exclusive locks: they ask for confirmation, --yes when not on a terminal.",
        options=(
            Option("level", "stackops_maintenance_level", "maintenance level",
                   flags=("--level",), choices=("none", "daily", "weekly", "monthly", "quarterly")),
            Option("tasks", "stackops_maintenance_tasks", "explicit task list, e.g. vacuum_analyze,reindex",
                   flags=("--tasks",), kind="list", metavar="TASKS"),
        ),
        consent=Consent("stackops_maintenance_allow_exclusive_locks", _maintenance_reason),
        examples=("stackops maintenance --level weekly", "stackops maintenance --level monthly --yes",
                  "stackops maintenance --tasks vacuum_analyze,reindex --check"),
    ),
    Procedure(
        name="scale",
        playbook="scaling.yml",
        help="scale a compose service to a number of replicas",
        description="Scale a stateless service and wait until every replica is healthy. "
                    "Scaling to 0 stops the service: it asks for confirmation, --yes when not on a terminal.",
        options=(
            Option("service", "stackops_scaling_service", "compose service name, e.g. api", required=True),
            Option("replicas", "stackops_scaling_replicas", "wanted number of replicas",
                   flags=("--replicas",), kind="int", required=True, metavar="N"),
        ),
        consent=Consent("stackops_scaling_allow_zero", _scale_reason),
        examples=("stackops scale api --replicas 3", "stackops scale api --replicas 1 --check",
                  "stackops scale api --replicas 0 --yes"),
    ),
    Procedure(
        name="incident",
        playbook="incident.yml",
        help="run an emergency runbook, or only collect an incident evidence bundle",
        description="Collect container status, recent logs, database activity, resources and health results "
                    "into one evidence bundle. Without a runbook it changes nothing on the stack; with "
                    "one it then acts: api_not_responding restarts the API behind a health gate, "
                    "db_connections_exhausted terminates idle sessions over an age, disk_space_critical "
                    "cleans up in a safe order and reports the space freed.",
        options=(
            Option("runbook", "stackops_incident", "emergency runbook to run after collecting diagnostics",
                   flags=("--runbook",), choices=("api_not_responding", "db_connections_exhausted", "disk_space_critical")),
            Option("since", "stackops_incident_since", "how far back to collect logs, e.g. 30m, 2h",
                   flags=("--since",), metavar="DURATION"),
        ),
        examples=("stackops incident", "stackops incident --runbook api_not_responding",
                  "stackops incident --runbook db_connections_exhausted --json | jq .result",
                  "stackops incident --since 2h --json | jq -r .result"),
    ),
)

BY_NAME = {procedure.name: procedure for procedure in PROCEDURES}
