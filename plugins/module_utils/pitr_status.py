# -*- coding: utf-8 -*-
# Copyright: (c) 2026, stackops maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The state of point-in-time recovery, read-only (module pg_pitr_info, `stackops pitr status`): receiver, slot, base
backups, recoverable window, the archive disk, and what is wrong with the WAL stream in sentences."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import os
import time

from ansible_collections.stackops.runbooks.plugins.module_utils.pg import connect, psycopg
from ansible_collections.stackops.runbooks.plugins.module_utils.pitr import (
    SYNC_NAME, WAL_SEGMENT_BYTES, Layout, archive_disk, dir_size, iso, lock_held, receiver_error, receiver_problems,
    recovery_window)
from ansible_collections.stackops.runbooks.plugins.module_utils.pitr_standby import (
    load_record, standby_problem, standby_status)
from ansible_collections.stackops.runbooks.plugins.module_utils.pitr_storage import Docker


def metrics_text(server, status, window):
    labels = '{server="%s"}' % server.replace('"', '')
    values = [
        ('stackops_pitr_enabled', 'PITR configured (1) or not (0).', int(status['enabled'])),
        ('stackops_pitr_receiver_up', 'WAL receiver alive (1) or not (0).', int(bool(status['receiver_alive']))),
        ('stackops_pitr_receiver_lag_bytes', 'WAL not yet flushed by the receiver.', status['receiver_lag_bytes']),
        ('stackops_pitr_slot_retained_bytes', 'WAL the replication slot keeps on the server.',
         status['slot_retained_bytes']),
        ('stackops_pitr_earliest_recoverable_timestamp_seconds', 'Oldest recoverable instant.', window['earliest']),
        ('stackops_pitr_latest_recoverable_timestamp_seconds', 'Newest recoverable instant.', window['latest']),
        ('stackops_pitr_archive_size_bytes', 'Base backups plus WAL archive.', status['archive_size_bytes']),
        ('stackops_pitr_archive_free_bytes', 'Free space on the WAL archive disk.', status['archive_disk']['free_bytes']),
        ('stackops_pitr_archive_disk_full', 'Less than one WAL segment free (1) or not (0).',
         int(status['archive_disk']['full'])),
        ('stackops_pitr_base_backups', 'Complete base backups.', len(window['backups'])),
    ]
    standby = status.get('standby')
    if standby:
        values += [
            ('stackops_pitr_standby_up', 'Warm standby replaying and streaming (1) or not (0).',
             int(bool(standby['healthy']))),
            ('stackops_pitr_standby_lag_bytes', 'WAL the warm standby has not replayed yet.', standby['lag_bytes']),
            ('stackops_pitr_standby_lag_seconds', 'Seconds since the last transaction the warm standby replayed.',
             standby['lag_seconds'])]
    lines = []
    for name, text, value in values:
        if value is None:
            continue
        lines += ['# HELP %s %s' % (name, text), '# TYPE %s gauge' % name, '%s%s %s' % (name, labels, value)]
    return '\n'.join(lines) + '\n'


def status(module):
    """pg_pitr_info's result (without ``changed``). The database may be down: its side is then unknown."""
    layout = Layout(module.params['pitr_dir'], module.params['server_name'])
    window = recovery_window(layout)
    held = lock_held(layout.receiver_lock())
    found = dict(enabled=os.path.exists(layout.server_conf), receiver_lock_held=held, receiver_alive=None,
                 receiver_lag_bytes=None, slot_retained_bytes=None, synchronous=None,
                 archive_size_bytes=dir_size(os.path.join(layout.server_home, 'base')) + window['wal']['size_bytes'])
    segment_bytes = WAL_SEGMENT_BYTES
    primary_lsn = None
    try:
        conn = connect(module.params)
        primary_lsn = conn.execute('SELECT pg_current_wal_lsn()::text').fetchone()[0]
        row = conn.execute(
            'SELECT s.active, pg_wal_lsn_diff(pg_current_wal_lsn(), s.restart_lsn)::bigint, '
            '(SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), r.flush_lsn)::bigint FROM pg_stat_replication r '
            ' WHERE r.pid = s.active_pid) FROM pg_replication_slots s WHERE s.slot_name = %s',
            (module.params['slot'],)).fetchone()
        segment_bytes = conn.execute(
            "SELECT setting::bigint FROM pg_settings WHERE name = 'wal_segment_size'").fetchone()[0]
        names = conn.execute('SHOW synchronous_standby_names').fetchone()[0].strip()
        found['synchronous'] = names in (SYNC_NAME, '"%s"' % SYNC_NAME)
        conn.close()
        if row is None:
            found['receiver_alive'] = False
        else:
            found['receiver_alive'] = bool(row[0]) and held
            found['slot_retained_bytes'] = row[1]
            found['receiver_lag_bytes'] = row[2]
    except psycopg.Error as exc:
        found['database_error'] = str(exc).strip()
    found['archive_disk'] = archive_disk(layout, segment_bytes)
    # Without the database, a receiver that holds no lock is down all the same.
    down = found['enabled'] and (found['receiver_alive'] is False or (found['receiver_alive'] is None and not held))
    found['receiver_error'] = receiver_error(layout) if down else None
    found['problems'] = receiver_problems(layout, False if down else found['receiver_alive'], found['archive_disk'],
                                          found['receiver_error'], found['slot_retained_bytes'],
                                          bool(found['synchronous']))
    # The warm standby (docs/pitr.md "Warm standby"): only when one was set up; docker is asked only then.
    found['standby'] = standby_status(Docker(module), layout, primary_lsn) if load_record(layout) else None
    found['metrics'] = metrics_text(layout.server, found, window)
    # An outage of the WAL stream pages like a failed procedure (roles/result notifies on critical): every commit
    # from now on would not be recoverable, or, with synchronous receiving, commits wait. A standby that is down
    # costs restore time, not data: a warning.
    stream_problems = bool(found['problems'])
    standby_down = standby_problem(found['standby'])
    if standby_down:
        found['problems'].append(standby_down)
    found['severity'] = 'critical' if stream_problems else (
        'ok' if found['enabled'] and not standby_down else 'warning')
    return dict(earliest_recoverable=iso(window['earliest']), latest_recoverable=iso(window['latest']),
                backups=window['backups'], wal_first=window['wal']['first_segment'],
                wal_last=window['wal']['last_segment'], checked_at=iso(time.time()), **found)
