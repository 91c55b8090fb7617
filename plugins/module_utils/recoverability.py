# -*- coding: utf-8 -*-
# Copyright: (c) 2026, stackops maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The stack's recoverability on one screen (`stackops status`): read from catalogs and state files, then judged.

Everything here reads files the other procedures wrote - the backup catalog, Barman's catalog and its receiver lock,
the off-site copy records (``<backup_dir>/.offsite/``), the drill records (``<backup_dir>/.drills/``) - plus two
docker engine calls for the containers. Nothing waits, takes a backup or runs a check.

``judge()`` turns what was read into problems, each naming what is stale or broken and what to do about it; none
means every objective is met.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import os
import time

from ansible_collections.stackops.runbooks.plugins.module_utils.backup_catalog import catalog
from ansible_collections.stackops.runbooks.plugins.module_utils.backup_set import read_json
from ansible_collections.stackops.runbooks.plugins.module_utils.checks import OK
from ansible_collections.stackops.runbooks.plugins.module_utils.drill import (
    TREND, Paths, drill_metrics, drill_summary, load_records)
from ansible_collections.stackops.runbooks.plugins.module_utils.offsite_plan import COPY_STATE_DIR
from ansible_collections.stackops.runbooks.plugins.module_utils.pitr import (
    Layout, archive_disk, iso, lock_held, receiver_error, receiver_problems, recovery_window)
from ansible_collections.stackops.runbooks.plugins.module_utils.pitr_standby import standby_brief, standby_problem


def human_age(seconds):
    """'45s', '12m05s', '3h20m', '2d04h' (the CLI's formatter, which this layer cannot import, agrees)."""
    if seconds is None:
        return 'never'
    whole = int(round(seconds))
    if whole < 60:
        return '%ds' % whole
    if whole < 3600:
        return '%dm%02ds' % divmod(whole, 60)
    if whole < 86400:
        return '%dh%02dm' % (whole // 3600, whole % 3600 // 60)
    return '%dd%02dh' % (whole // 86400, whole % 86400 // 3600)


# ---------------------------------------------------------------- what is read


def logical_backups(backup_dir, database, now):
    """The newest verified set of ``database`` (and the newest set at all), from the catalog's manifests."""
    sets, partials = catalog(backup_dir, database)
    verified = [entry for entry in sets if entry['verified']]
    newest = verified[0] if verified else None

    def brief(entry):
        return None if entry is None else dict(id=entry['id'], started_at=entry['started_at'],
                                               age_seconds=entry['age_seconds'], size_bytes=entry['size_bytes'])
    return dict(database=database, count=len(sets), newest=brief(sets[0] if sets else None),
                newest_verified=brief(newest), unverified_newer=len(sets) - (sets.index(newest) if newest else len(sets)),
                in_progress=[entry['id'] for entry in partials])


def pitr_state(pitr_dir, server, now=None, docker=None):
    """PITR as one dict: set up or not, the receiver, the recoverable window, the newest verified base backup.

    The one place the status and the drill read PITR's state from, so a warm standby can answer here later."""
    if not pitr_dir or not server:
        return dict(enabled=False)
    layout = Layout(pitr_dir, server)
    if not os.path.exists(layout.server_conf):
        return dict(enabled=False, server=server, pitr_dir=pitr_dir)
    now = now or time.time()
    alive = lock_held(layout.receiver_lock())
    window = recovery_window(layout)
    disk = archive_disk(layout)
    problems = receiver_problems(layout, alive, disk, None if alive else receiver_error(layout))
    verified = [entry for entry in window['backups'] if entry['verified'] and entry['status'] == 'DONE']
    newest = verified[0] if verified else None
    # The warm standby, from its record and one `docker inspect` (no query): cheap enough for every status.
    standby = standby_brief(docker, layout) if docker is not None else None
    if standby and standby['state'] != 'running':
        problems.append(standby_problem(dict(standby, healthy=False, in_recovery=None, receiver=None)))
    return dict(
        standby=standby, enabled=True, server=server, pitr_dir=pitr_dir, receiver_alive=alive,
        earliest_recoverable=iso(window['earliest']), latest_recoverable=iso(window['latest']),
        latest_recoverable_age_seconds=None if window['latest'] is None else max(0, int(now - window['latest'])),
        base_backups=len(window['backups']),
        newest_verified=None if newest is None else dict(
            id=newest['id'], end_time=newest['end_time'], age_seconds=newest['age_seconds']),
        archive_full=disk['full'], problems=problems)


def offsite_copies(backup_dir, now):
    """Each target's newest verified copy as the last copy run recorded it, aged to now."""
    directory = os.path.join(backup_dir, COPY_STATE_DIR)
    copies = []
    for name in sorted(os.listdir(directory)) if os.path.isdir(directory) else []:
        if not name.endswith('.json'):
            continue
        try:
            record = read_json(os.path.join(directory, name))
        except (IOError, OSError, ValueError):
            continue
        latest = record.get('latest_verified') or None
        age = None
        if latest and latest.get('age_seconds') is not None and record.get('recorded_epoch'):
            age = int(latest['age_seconds'] + max(0, now - record['recorded_epoch']))
        copies.append(dict(target=record.get('target_name') or record.get('target'), database=record.get('database'),
                           group_id=record.get('group_id'), newest_verified=(latest or {}).get('id'),
                           age_seconds=age, checked_at=record.get('recorded_at')))
    return copies


def drills(backup_dir, now):
    return drill_summary(load_records(Paths(os.path.join(backup_dir, '.drills')), TREND), now)


def service_rows(snapshot):
    """[{service, containers, running, healthy, state, ok}] from compose.service_status() summaries."""
    rows = []
    for name, summary in sorted(snapshot.items()):
        check = summary['check']
        rows.append(dict(service=name, containers=summary['total'], running=summary['running'],
                         healthy=summary['healthy'], health=summary['health'], state=check['message'],
                         ok=check['severity'] == OK))
    return rows


# ---------------------------------------------------------------- the judgement


def judge(status, objectives):
    """Problems of a status document against the objectives {rpo, rto, drill_max_age} (seconds or None)."""
    problems = []
    rpo, rto, drill_age = objectives.get('rpo'), objectives.get('rto'), objectives.get('drill_max_age')
    for row in status.get('services') or []:
        if not row['ok']:
            problems.append('%s' % row['state'])
    if status.get('services') == [] and status.get('project'):
        problems.append('no container of compose project %s exists: start the stack (stackops startup)' % status['project'])
    logical = status.get('logical') or {}
    newest = logical.get('newest_verified')
    if newest is None:
        problems.append('no verified logical backup of %s: take one with `stackops backup`' % logical.get('database'))
    elif rpo is not None and newest['age_seconds'] > rpo:
        problems.append('the newest verified logical backup of %s (%s) is %s old, older than the RPO %s: take one '
                        'with `stackops backup` and check why the schedule did not' % (
                            logical.get('database'), newest['id'], human_age(newest['age_seconds']), human_age(rpo)))
    pitr = status.get('pitr') or {}
    if pitr.get('enabled'):
        problems.extend('PITR: %s' % text for text in pitr.get('problems') or [])
        if pitr.get('newest_verified') is None:
            problems.append('PITR is enabled for %s but has no verified base backup: take one with `stackops backup '
                            '--physical`' % pitr.get('server'))
        age = pitr.get('latest_recoverable_age_seconds')
        if rpo is not None and age is not None and age > rpo and not pitr.get('problems'):
            problems.append('PITR: the latest recoverable point of %s is %s old, older than the RPO %s' % (
                pitr.get('server'), human_age(age), human_age(rpo)))
    for copy in status.get('offsite') or []:
        what = copy.get('group_id') or copy.get('database') or 'its sets'
        if copy.get('age_seconds') is None:
            problems.append('off-site target %s holds no verified copy of %s' % (copy['target'], what))
        elif rpo is not None and copy['age_seconds'] > rpo:
            problems.append('off-site target %s: the newest verified copy of %s (%s) is %s old, older than the RPO %s'
                            % (copy['target'], what, copy.get('newest_verified'), human_age(copy['age_seconds']),
                               human_age(rpo)))
    problems.extend(drill_problems(status.get('drills') or {}, rto, drill_age))
    for schedule in status.get('schedules') or []:
        last = schedule.get('last_run') or {}
        if last and last.get('status') not in (None, 'successful'):
            problems.append('schedule %s: its last run %s (%s) %s%s' % (
                schedule.get('name'), last.get('run_id') or '', last.get('started') or '?', last.get('status'),
                ': %s' % last['error'] if last.get('error') else ''))
    return problems


def drill_problems(summary, rto, max_age):
    problems = []
    last, last_ok = summary.get('last'), summary.get('last_success')
    if last is None:
        if max_age is not None:
            problems.append('no restore drill has run: run `stackops drill` (and schedule it: `stackops schedule install '
                            'drill --when weekly`)')
        return problems
    if last.get('status') != 'passed':
        failed = last.get('failed_checks') or []
        problems.append('the last restore drill (%s) failed%s: %s' % (
            last.get('id'), ' its check(s) %s' % ', '.join(str(name) for name in failed) if failed else '',
            last.get('error') or 'no error recorded'))
    if max_age is not None:
        age = summary.get('last_success_age_seconds')
        if last_ok is not None and age > max_age:
            problems.append('the last passing restore drill (%s) is %s old, older than %s: run `stackops drill`' % (
                last_ok.get('id'), human_age(age), human_age(max_age)))
    if rto is not None and last_ok is not None and last_ok.get('rto_seconds') is not None \
            and last_ok['rto_seconds'] > rto:
        problems.append('the last passing restore drill (%s) took %s to recover, longer than the RTO %s' % (
            last_ok.get('id'), human_age(last_ok['rto_seconds']), human_age(rto)))
    return problems


def status_metrics(stack, status):
    """Prometheus text exposition of the status (node_exporter textfile collector)."""
    label = 'stack="%s"' % stack.replace('\\', '\\\\').replace('"', '\\"')
    lines = ['# HELP stackops_status_ok Whether every recoverability objective is met (1) or not (0).',
             '# TYPE stackops_status_ok gauge', 'stackops_status_ok{%s} %d' % (label, 0 if status['problems'] else 1),
             '# HELP stackops_status_problems Number of recoverability problems.',
             '# TYPE stackops_status_problems gauge', 'stackops_status_problems{%s} %d' % (label, len(status['problems']))]
    newest = (status.get('logical') or {}).get('newest_verified')
    lines += ['# HELP stackops_backup_newest_verified_age_seconds Age of the newest verified logical backup.',
              '# TYPE stackops_backup_newest_verified_age_seconds gauge',
              'stackops_backup_newest_verified_age_seconds{%s} %s' % (label, newest['age_seconds'] if newest else 'NaN')]
    pitr = status.get('pitr') or {}
    if pitr.get('enabled'):
        lines += ['# HELP stackops_pitr_receiver_alive Whether the WAL receiver runs.',
                  '# TYPE stackops_pitr_receiver_alive gauge',
                  'stackops_pitr_receiver_alive{%s} %d' % (label, 1 if pitr.get('receiver_alive') else 0),
                  '# HELP stackops_pitr_latest_recoverable_age_seconds Age of the latest recoverable point.',
                  '# TYPE stackops_pitr_latest_recoverable_age_seconds gauge',
                  'stackops_pitr_latest_recoverable_age_seconds{%s} %s' % (
                      label, pitr['latest_recoverable_age_seconds'] if pitr.get(
                          'latest_recoverable_age_seconds') is not None else 'NaN')]
    for copy in status.get('offsite') or []:
        lines.append('stackops_offsite_newest_verified_age_seconds{%s,target="%s"} %s' % (
            label, copy['target'], copy['age_seconds'] if copy['age_seconds'] is not None else 'NaN'))
    return '\n'.join(lines) + '\n' + drill_metrics(stack, status.get('drills') or drill_summary([]))
