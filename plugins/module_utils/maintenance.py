# -*- coding: utf-8 -*-
# Copyright: (c) 2026, stackops maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Pure logic shared by the maintenance modules: deadlines, operation rules, bloat and session selection.

Nothing here talks to PostgreSQL or Docker, so all of it is unit-tested without either.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import datetime
import re

from ansible.module_utils.common.text.formatters import bytes_to_human

# operation -> (VACUUM options, needs an ACCESS EXCLUSIVE lock on the table)
# 'analyze' and 'reindex' are their own statements; REINDEX is exclusive unless CONCURRENTLY.
OPERATIONS = {
    'vacuum': ((), False),
    'vacuum_analyze': (('ANALYZE',), False),
    'vacuum_freeze': (('FREEZE', 'ANALYZE'), False),
    'vacuum_full': (('FULL', 'ANALYZE'), True),
    'analyze': ((), False),
    'reindex': ((), False),
}

# REINDEX ... CONCURRENTLY exists from PostgreSQL 12 on.
REINDEX_CONCURRENTLY_MIN_VERSION = 120000

# Session states as pg_stat_activity spells them.
SESSION_STATES = ['active', 'idle', 'idle in transaction', 'idle in transaction (aborted)',
                  'fastpath function call', 'disabled']

UTC = datetime.timezone.utc


def utcnow():
    return datetime.datetime.now(UTC)


def parse_deadline(value, start=None):
    """A window deadline as an aware UTC datetime, or None when unset.

    ``value`` is an ISO 8601 time (``2026-11-23T22:00:00Z``, ``2026-11-23 22:00+01:00``; a time
    without an offset is taken as UTC) or a whole number of minutes from ``start`` (default now).
    Raises ValueError with a message that says which forms are accepted.
    """
    if value is None:
        return None
    if isinstance(value, datetime.datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    text = str(value).strip()
    if not text:
        return None
    if re.match(r'^\d+(\.\d+)?$', text):
        return (start or utcnow()) + datetime.timedelta(minutes=float(text))
    iso = text[:-1] + '+00:00' if text.endswith(('Z', 'z')) else text
    try:
        parsed = datetime.datetime.fromisoformat(iso)
    except ValueError:
        raise ValueError('deadline %r is neither minutes from now (e.g. 90) nor an ISO 8601 time '
                         '(e.g. 2026-11-23T22:00:00Z)' % (value,))
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


# Task lists of the maintenance levels, in the order they run.
LEVELS = {
    'none': [],
    'daily': ['analyze'],
    'weekly': ['vacuum_analyze', 'docker_prune', 'log_cleanup'],
    'monthly': ['vacuum_full', 'reindex', 'vacuum_analyze', 'docker_prune', 'log_cleanup'],
    'quarterly': ['vacuum_full', 'reindex', 'vacuum_freeze', 'docker_prune', 'log_cleanup'],
}
WINDOW_TASKS = ['vacuum', 'vacuum_analyze', 'vacuum_full', 'vacuum_freeze', 'analyze', 'reindex',
                'docker_prune', 'log_cleanup', 'rolling_update']


def window_tasks(level, tasks, update_services=None):
    """The tasks of a maintenance window as dicts, in order: the explicit ``tasks`` (names, dicts with a name, or a
    comma-separated string) or else the level's; a rolling_update of ``update_services`` is appended unless asked for.
    Raises ValueError naming unknown levels or tasks and the known ones.
    """
    if isinstance(tasks, str):
        tasks = [part.strip() for part in tasks.split(',') if part.strip()]
    tasks = list(tasks or [])
    if not tasks:
        if level not in LEVELS:
            raise ValueError('unknown maintenance level %r (known: %s)' % (level, ', '.join(LEVELS)))
        tasks = LEVELS[level]
    plan = [dict(item) if isinstance(item, dict) else dict(name=str(item)) for item in tasks]
    unknown = [item.get('name') for item in plan if item.get('name') not in WINDOW_TASKS]
    if unknown:
        raise ValueError('unknown maintenance task(s) %s (known: %s)' % (', '.join(map(str, unknown)), ', '.join(WINDOW_TASKS)))
    if update_services and 'rolling_update' not in [item['name'] for item in plan]:
        plan.append(dict(name='rolling_update', services=list(update_services)))
    return plan


def seconds_left(deadline, now=None):
    """Seconds until ``deadline`` (negative once passed); None when there is no deadline."""
    if deadline is None:
        return None
    return (deadline - (now or utcnow())).total_seconds()


def needs_exclusive_lock(operation, concurrently, server_version):
    """True when the operation would take an ACCESS EXCLUSIVE lock that blocks reads and writes."""
    if operation == 'reindex':
        return not (concurrently and server_version >= REINDEX_CONCURRENTLY_MIN_VERSION)
    return OPERATIONS[operation][1]


def split_table_name(name):
    """``schema.table`` -> ('schema', 'table'); ``table`` -> (None, 'table'). Quotes are not interpreted."""
    if '.' in name:
        schema, table = name.split('.', 1)
        return schema, table
    return None, name


def bloat_percent_from_stats(live_tuples, dead_tuples):
    """Estimated bloat as the dead share of all tuples, from pg_stat_user_tables counters."""
    live = live_tuples or 0
    dead = dead_tuples or 0
    total = live + dead
    if total <= 0:
        return 0.0
    return round(100.0 * dead / total, 2)


def select_bloated(tables, threshold, min_dead_tuples=0, min_table_bytes=0):
    """Split table dicts (with ``bloat_percent``, ``dead_tuples``, ``total_bytes``) into (selected, skipped).

    Without a threshold every table is selected. Skipped tables carry the reason.
    """
    if threshold is None:
        return list(tables), []
    selected, skipped = [], []
    for table in tables:
        reason = None
        if table.get('bloat_percent', 0.0) < threshold:
            reason = 'bloat %.1f%% below threshold %.1f%%' % (table.get('bloat_percent', 0.0), threshold)
        elif table.get('bloat_method') == 'stats' and (table.get('dead_tuples') or 0) < max(min_dead_tuples, 1):
            reason = 'dead tuples %d below minimum %d' % (table.get('dead_tuples') or 0, max(min_dead_tuples, 1))
        elif (table.get('total_bytes') or 0) < min_table_bytes:
            reason = 'size %d bytes below minimum %d' % (table.get('total_bytes') or 0, min_table_bytes)
        if reason:
            skipped.append(dict(table, reason=reason))
        else:
            selected.append(table)
    return selected, skipped


def session_matches(session, filters):
    """Whether a pg_stat_activity row (dict) matches every given connection filter.

    ``filters`` keys: states, users, applications, databases (lists; empty = any),
    exclude_users, exclude_applications (lists), min_state_age, min_xact_age (seconds; None = any).
    Ages in the session dict are ``state_age`` and ``xact_age`` in seconds (None when not applicable).
    """
    def in_list(value, allowed):
        return not allowed or value in allowed

    if not in_list(session.get('state'), filters.get('states')):
        return False
    if not in_list(session.get('user'), filters.get('users')):
        return False
    if not in_list(session.get('application'), filters.get('applications')):
        return False
    if not in_list(session.get('database'), filters.get('databases')):
        return False
    if session.get('user') in (filters.get('exclude_users') or []):
        return False
    if session.get('application') in (filters.get('exclude_applications') or []):
        return False
    for key, age_key in (('min_state_age', 'state_age'), ('min_xact_age', 'xact_age')):
        limit = filters.get(key)
        if limit is None:
            continue
        age = session.get(age_key)
        if age is None or age < limit:
            return False
    return True


def has_session_filter(filters):
    """True when at least one filter narrows the selection (terminating everything needs an explicit opt-in)."""
    for key in ('states', 'users', 'applications', 'databases'):
        if filters.get(key):
            return True
    return filters.get('min_state_age') is not None or filters.get('min_xact_age') is not None


def human_bytes(count):
    """1536 -> '1.5 KiB'; negative values keep their sign."""
    if count is None:
        return None
    sign = '-' if count < 0 else ''
    value = float(abs(count))
    for unit in ('B', 'KiB', 'MiB', 'GiB', 'TiB'):
        if value < 1024 or unit == 'TiB':
            return '%s%s %s' % (sign, ('%d' % value) if unit == 'B' else ('%.1f' % value), unit)
        value /= 1024.0
    return None  # pragma: no cover


_FLAG_SCRIPTS = {
    # $1 flag path, $2 its directory, $3 reason. The flag appears atomically (rename), so the
    # frontend never sees a half-written file.
    'read': 'if [ -e "$1" ]; then echo on; else echo off; fi',
    'set': 'mkdir -p "$2" && printf "%s\\n" "$3" > "$1.tmp.$$" && mv -f "$1.tmp.$$" "$1"',
    'clear': 'rm -f "$1"',
}


def maintenance_flag_script(action):
    """The sh script that reads, sets or clears the maintenance flag; arguments are passed positionally."""
    return _FLAG_SCRIPTS[action]


def task_summary(operation, result):
    """A pg_maintenance run as one entry of a maintenance window's report (its ``done`` list)."""
    return dict(name=operation, changed=result['changed'], tables=[action['table'] for action in result['actions']],
                tables_skipped=len(result['skipped_tables']), reclaimed_bytes=result['reclaimed_bytes'],
                reclaimed=result['reclaimed'], duration_seconds=result['duration_seconds'],
                deadline_reached=result['deadline_reached'], actions=result['actions'])


STRATEGY_WORDS = {'page': 'maintenance page', 'stop_writers': 'writers stopped', 'pause_writers': 'writers paused',
                  'none': 'application kept serving'}


def window_summary(report):
    """A window's report (the role's stackops_result) in two lines: how the application was kept, then what was
    done, skipped and reclaimed, the backup, the restore point and the warnings."""
    held = report.get('writers_held') or []
    restore_point = report.get('restore_point')
    warnings = report.get('warnings') or []
    return 'maintenance %s (%s%s):\ndone %s; skipped %s; reclaimed %s%s%s%s' % (
        report['status'], STRATEGY_WORDS[report['maintenance_strategy']], ': ' + ', '.join(held) if held else '',
        ', '.join(task['name'] for task in report.get('done') or []) or 'nothing',
        ', '.join(task['name'] for task in report.get('skipped') or []) or 'nothing',
        report.get('reclaimed'),
        '; backup %s' % report['backup_id'] if report.get('backup_id') else '',
        '; restore point %s at %s' % (restore_point['name'], restore_point['lsn']) if restore_point else '',
        '; warnings: ' + '; '.join(warnings) if warnings else '')


def rollback_failure(report):
    """Why a window that rolled back failed, what the rollback put back and what to do next, from its report."""
    failed, rollback = report['failed'], report['rollback']
    images_failed = rollback.get('images_failed') or []
    if rollback.get('database_restored') and (rollback.get('database_restored_by') or 'backup') == 'pitr':
        database = 'recovered to restore point %s (the data before the rollback is kept in %s)' % (
            rollback['restore_point']['name'], rollback['previous_data'])
    elif rollback.get('database_restored'):
        database = 'restored from backup %s' % rollback.get('backup_id')
    else:
        database = 'NOT restored (%s)' % (rollback.get('database_restore_error') or rollback.get('database_restore_reason'))
    return ('maintenance step %s failed in task "%s": %s. Rolled back: images of %s%s;\ndatabase %s;\nmaintenance mode %s; '
            'health after rollback: %s. Fix the cause shown above and run the window again; the full report is in '
            'stackops_result.') % (
        failed['step'], failed['task'], failed['message'], ', '.join(rollback.get('images_restored') or []) or 'no service',
        ' (FAILED for %s: restore them by hand with docker tag ID REF and docker compose up -d)' % ', '.join(images_failed)
        if images_failed else '', database, report.get('maintenance_mode'), report.get('health_after'))


SIGNAL_WORDS = {'terminate': ('terminated', 'would terminate'), 'cancel': ('cancelled', 'would cancel'),
                'list': ('found', 'found')}


def connections_summary(result, action, check_mode, min_state_age=None):
    """pg_connections' run in one line: the usage it found and the sessions it signalled (in check mode, would)."""
    found = result.get('usage') or {}
    signalled = result.get('targets') if check_mode or action == 'list' else result.get('terminated')
    return 'connections %s/%s (%s%%); %s %d session(s)%s' % (
        found.get('client_backends', '?'), found.get('max_connections', '?'), found.get('usage_percent', '?'),
        SIGNAL_WORDS[action][1 if check_mode else 0], len(signalled or []),
        ' idle > %s s' % min_state_age if min_state_age is not None else '')


def prune_record(prune):
    """The docker_prune task's record in a window's report, from community.docker.docker_prune's result."""
    reclaimed = int(sum(prune.get(key) or 0 for key in (
        'containers_space_reclaimed', 'images_space_reclaimed', 'volumes_space_reclaimed',
        'builder_cache_space_reclaimed')))
    return dict(name='docker_prune', changed=bool(prune.get('changed', False)),
                containers_removed=len(prune.get('containers') or []), images_removed=len(prune.get('images') or []),
                reclaimed_bytes=reclaimed, reclaimed=bytes_to_human(reclaimed))
