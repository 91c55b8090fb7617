#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, stackops maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import (absolute_import, division, print_function)
__metaclass__ = type

DOCUMENTATION = r'''
---
module: pg_pitr_info
short_description: Report the state of point-in-time recovery - receiver, slot, base backups, recoverable window
version_added: 0.2.0
description:
  - Reads Barman's catalog and PostgreSQL's replication views. Changes nothing.
  - Reports whether the WAL receiver is alive (it holds Barman's receive-wal lock and streams from the slot), its lag,
    the bytes the slot retains on the server, the base backups (newest first, with their verification), the
    earliest and latest recoverable instants and the archive's size.
  - RV(problems) says what is wrong with the WAL stream and what to do next, in sentences - the receiver is down
    (with the error it logged, RV(receiver_error)), or the archive disk has less than one WAL segment free
    (RV(archive_disk), with the path and the free bytes).
  - RV(metrics) is the same in the Prometheus text exposition format, for a node_exporter textfile collector.
  - The database may be down; then the PostgreSQL side is reported as unknown and the catalog still is.
author:
  - stackops maintainers (@stackops)
options:
  slot:
    description: Replication slot of the receiver.
    type: str
    default: stackops_pitr
extends_documentation_fragment:
  - stackops.runbooks.pitr
  - stackops.runbooks.postgres
  - stackops.runbooks.attributes
  - stackops.runbooks.attributes.info_module
  - stackops.runbooks.attributes.actiongroup_pitr_postgresql
seealso:
  - module: stackops.runbooks.pg_pitr
'''

EXAMPLES = r'''
- name: PITR status
  stackops.runbooks.pg_pitr_info:
    pitr_dir: /srv/backups/shop-pitr
    server_name: shop
    login_user: app
    login_password_file: /srv/shop/secrets/db_password
  register: pitr
'''

RETURN = r'''
enabled:
  description: Whether Barman's configuration for the server exists.
  returned: always
  type: bool
receiver_alive:
  description: Whether the receiver holds its lock and the slot is active (null when the database is unreachable).
  returned: always
  type: bool
synchronous:
  description: Whether synchronous receiving is on (C(synchronous_standby_names) names the receiver), so commits wait
    for it; null when the database is unreachable.
  returned: always
  type: bool
receiver_lock_held:
  description: Whether a process holds Barman's receive-wal lock.
  returned: always
  type: bool
receiver_lag_bytes:
  description: WAL written on the server but not yet flushed by the receiver.
  returned: always
  type: int
slot_retained_bytes:
  description: WAL the slot keeps on the server (current LSN minus the slot's restart LSN).
  returned: always
  type: int
earliest_recoverable:
  description: End of the oldest complete base backup (UTC, ISO 8601).
  returned: always
  type: str
latest_recoverable:
  description: Time of the newest WAL the archive has (UTC, ISO 8601).
  returned: always
  type: str
archive_size_bytes:
  description: Size of the base backups plus the WAL archive.
  returned: always
  type: int
backups:
  description: Base backups, newest first (id, kind=physical, status, begin/end time and LSN, size, verified,
    age_seconds since the end of the backup).
  returned: always
  type: list
  elements: dict
receiver_error:
  description: The error the last WAL receiver run logged in Barman's log (pg_receivewal's own message when there is
    one, e.g. C(No space left on device)); null when the receiver is alive or logged none.
  returned: always
  type: str
archive_disk:
  description: The filesystem the receiver writes to. C(full) is true when less than one WAL segment is free
    (pg_receivewal preallocates a whole segment, so it stops at the next segment boundary).
  returned: always
  type: dict
  contains:
    path:
      description: Directory measured (the server's Barman home, or its nearest existing parent).
      type: str
    free_bytes:
      description: Bytes available to the receiver.
      type: int
    total_bytes:
      description: Size of the filesystem.
      type: int
    segment_bytes:
      description: The server's WAL segment size (16 MiB when the database is unreachable).
      type: int
    full:
      description: Whether less than one segment is free.
      type: bool
problems:
  description: What is wrong with the WAL stream (receiver down, archive disk full), one sentence each saying what to
    do next; empty when all is well.
  returned: always
  type: list
  elements: str
database_error:
  description: Why the PostgreSQL side could not be read, when it could not.
  returned: when the database is unreachable
  type: str
metrics:
  description: The status as Prometheus textfile metrics.
  returned: always
  type: str
'''

import os
import time

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.stackops.runbooks.plugins.module_utils.pg import connect, pg_connection_spec, prepare, psycopg
from ansible_collections.stackops.runbooks.plugins.module_utils.pitr import (
    SYNC_NAME, WAL_SEGMENT_BYTES, Layout, archive_disk, dir_size, iso, lock_held, pitr_argument_spec, receiver_error,
    receiver_problems, recovery_window)


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


def main():
    spec = dict(slot=dict(type='str', default='stackops_pitr'))
    spec.update(pg_connection_spec())
    spec.update(pitr_argument_spec())
    module = AnsibleModule(argument_spec=spec, supports_check_mode=True)
    prepare(module)
    layout = Layout(module.params['pitr_dir'], module.params['server_name'])
    window = recovery_window(layout)
    held = lock_held(layout.receiver_lock())
    status = dict(enabled=os.path.exists(layout.server_conf), receiver_lock_held=held, receiver_alive=None,
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
        status['synchronous'] = names in (SYNC_NAME, '"%s"' % SYNC_NAME)
        conn.close()
        if row is None:
            status['receiver_alive'] = False
        else:
            status['receiver_alive'] = bool(row[0]) and held
            status['slot_retained_bytes'] = row[1]
            status['receiver_lag_bytes'] = row[2]
    except psycopg.Error as exc:
        status['database_error'] = str(exc).strip()
    status['archive_disk'] = archive_disk(layout, segment_bytes)
    # Without the database, a receiver that holds no lock is down all the same.
    down = status['enabled'] and (status['receiver_alive'] is False or (status['receiver_alive'] is None and not held))
    status['receiver_error'] = receiver_error(layout) if down else None
    status['problems'] = receiver_problems(layout, False if down else status['receiver_alive'], status['archive_disk'],
                                           status['receiver_error'], status['slot_retained_bytes'],
                                           bool(status['synchronous']))
    status['metrics'] = metrics_text(layout.server, status, window)
    module.exit_json(changed=False, earliest_recoverable=iso(window['earliest']),
                     latest_recoverable=iso(window['latest']), backups=window['backups'],
                     wal_first=window['wal']['first_segment'], wal_last=window['wal']['last_segment'],
                     checked_at=iso(time.time()), **status)


if __name__ == '__main__':
    main()
