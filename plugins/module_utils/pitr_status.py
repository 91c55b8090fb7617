# -*- coding: utf-8 -*-
# Copyright: (c) 2026, stackops maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The state of point-in-time recovery, read-only (module pg_pitr_info, `stackops pitr status`): receiver, slot, base
backups, recoverable window, the archive disk, and what is wrong with the WAL stream in sentences."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import os
import re
import time

from ansible_collections.stackops.runbooks.plugins.module_utils.pg import connect, psycopg
from ansible_collections.stackops.runbooks.plugins.module_utils.pitr import (
    SYNC_NAME, Layout, dir_size, iso, lock_held, recovery_window)


WAL_SEGMENT_BYTES = 16 * 1024 * 1024


def archive_disk(layout, segment_bytes=WAL_SEGMENT_BYTES):
    """Free space where the receiver writes. pg_receivewal preallocates each segment in full before it writes a
    byte of it, so less than one segment free stops the receiver at the next segment boundary."""
    path = layout.server_home
    while not os.path.isdir(path) and os.path.dirname(path) != path:
        path = os.path.dirname(path)
    stat = os.statvfs(path)
    free = stat.f_bavail * stat.f_frsize
    return dict(path=path, free_bytes=free, total_bytes=stat.f_blocks * stat.f_frsize,
                segment_bytes=segment_bytes, full=free < segment_bytes)


def receiver_error(layout, tail_bytes=262144):
    """The error the last receive-wal of this server logged (pg_receivewal's own words first), or None."""
    try:
        with open(layout.log, 'rb') as handle:
            handle.seek(0, os.SEEK_END)
            handle.seek(max(0, handle.tell() - tail_bytes))
            lines = handle.read().decode('utf-8', 'replace').splitlines()
    except (IOError, OSError):
        return None
    started = 'Starting receive-wal for server %s' % layout.server
    last_start = max((i for i, line in enumerate(lines) if started in line), default=None)
    if last_start is None:
        return None
    pid = re.search(r'\[(\d+)\]', lines[last_start])
    own = [line for line in lines[last_start:] if pid is None or '[%s]' % pid.group(1) in line]
    errors = [line for line in own if 'pg_receivewal: error:' in line and 'disconnected' not in line]
    errors = errors or [line for line in own if ' ERROR: ' in line]
    if not errors:
        return None
    text = re.sub(r'^\S+ \S+ \[\d+\] \S+ (INFO|ERROR): ', '', errors[0]).strip()
    return text[len(layout.server) + 2:] if text.startswith(layout.server + ': ') else text


def receiver_problems(layout, alive, disk, error=None, retained_bytes=None, synchronous=False):
    """What is wrong with the WAL stream, each with what to do next (for `pitr status` and `pitr enable`)."""
    problems = []
    if synchronous and alive is False:
        problems.append(
            'commits are waiting: synchronous receiving is on (synchronous_standby_names = %s) and the WAL receiver '
            'is down; restart it now with `stackops pitr enable`, or stop waiting with `stackops pitr enable -e '
            'stackops_pitr_synchronous=false`' % SYNC_NAME)
    kept = ('the slot keeps the WAL on the server meanwhile (%s bytes so far, in the database\'s pg_wal: watch '
            'that disk)' % retained_bytes) if retained_bytes is not None else 'the slot keeps the WAL on the server'
    if disk['full']:
        problems.append(
            'the WAL archive disk at %s is full: %d bytes free, less than one %d-byte WAL segment, so the receiver '
            'cannot start its next segment; free space there (or move stackops_pitr_dir to a bigger disk), then run '
            '`stackops pitr enable` to restart the receiver; %s and the receiver catches up from it'
            % (disk['path'], disk['free_bytes'], disk['segment_bytes'], kept))
    if alive is False and not disk['full']:
        problems.append(
            'the WAL receiver of %s is not running%s; restart it with `stackops pitr enable` (or wait for the '
            'stackops_pitr_cron_file entry, which runs `barman cron` every minute); %s, so no WAL is lost; if it does '
            'not stay up see %s' % (layout.server, ' (last error: %s)' % error if error else '', kept, layout.log))
    elif alive is False and error:
        problems.append('the WAL receiver of %s stopped: %s' % (layout.server, error))
    return problems


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
    try:
        conn = connect(module.params)
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
    found['metrics'] = metrics_text(layout.server, found, window)
    # An outage of the WAL stream pages like a failed procedure (roles/result notifies on critical): every commit
    # from now on would not be recoverable, or, with synchronous receiving, commits wait.
    found['severity'] = 'critical' if found['problems'] else ('ok' if found['enabled'] else 'warning')
    return dict(earliest_recoverable=iso(window['earliest']), latest_recoverable=iso(window['latest']),
                backups=window['backups'], wal_first=window['wal']['first_segment'],
                wal_last=window['wal']['last_segment'], checked_at=iso(time.time()), **found)
