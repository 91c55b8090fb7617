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
  - RV(standby) is the warm standby's state and replay lag when one was set up (C(pg_pitr standby=true)); a standby
    that is down adds a sentence to RV(problems) and makes the severity C(warning), not C(critical), since it costs restore time, not data.
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
standby:
  description:
    - The warm standby, when one was set up, else null. C(container), C(storage), C(seeded_at), C(state)
      (V(running), V(exited), V(missing), V(seeding), V(not answering)), C(delay) (its C(recovery_min_apply_delay)),
      C(in_recovery), C(receiver) (its WAL receiver's status, V(streaming) when well), C(receive_lsn),
      C(replay_lsn), C(replayed_until) (time of the last transaction it replayed), C(lag_bytes) (WAL behind the
      primary), C(lag_seconds) (since the last transaction it replayed; 0 when it replayed everything) and
      C(healthy).
  returned: always
  type: dict
database_error:
  description: Why the PostgreSQL side could not be read, when it could not.
  returned: when the database is unreachable
  type: str
metrics:
  description: The status as Prometheus textfile metrics.
  returned: always
  type: str
'''

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.stackops.runbooks.plugins.module_utils.pg import pg_connection_spec, prepare
from ansible_collections.stackops.runbooks.plugins.module_utils.pitr import pitr_argument_spec
from ansible_collections.stackops.runbooks.plugins.module_utils.pitr_status import status


def main():
    spec = dict(slot=dict(type='str', default='stackops_pitr'))
    spec.update(pg_connection_spec())
    spec.update(pitr_argument_spec())
    module = AnsibleModule(argument_spec=spec, supports_check_mode=True)
    prepare(module)
    module.exit_json(changed=False, **status(module))


if __name__ == '__main__':
    main()
