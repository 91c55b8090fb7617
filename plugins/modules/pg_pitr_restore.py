#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, stackops maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import (absolute_import, division, print_function)
__metaclass__ = type

DOCUMENTATION = r'''
---
module: pg_pitr_restore
short_description: Recover the compose PostgreSQL to a point in time beside the live data, check it, then swap
version_added: 0.2.0
description:
  - Picks the base backup, among the complete ones that end before the target and did not fail verification, the
    newest verified one (else the newest one). A target outside the recoverable window is refused before anything
    is written.
  - With the server alive, closes its WAL segment and waits until the WAL receiver holds it (it streams, so that is
    at once), so every commit made before the run is recoverable. With the server gone, the receiver's C(.partial)
    segment is used.
  - Runs C(barman recover) with the target into new storage beside the live data (a new local docker volume, or a
    sibling directory of a bind mount), as archive recovery that ends in promotion onto a new timeline (for
    V(latest) too), so the old server's later WAL never collides with the recovered one's in the archive.
  - Starts the recovered cluster in a scratch container of the service's image (the image of its running container,
    so a service built by compose works too; no network), waits until recovery reached the target and promoted,
    queries it as O(check_user) and stops it cleanly.
  - With O(swap=true) it first checks that the exchange can work (same filesystem, neither directory a mount point,
    room on the live data's filesystem), then stops the database service, exchanges the live data directory with
    the recovered one in a single C(renameat2(RENAME_EXCHANGE)) call, and starts the service through its health
    check. The data from before stays in the new storage (recorded in C(swaps.json)) until the operator drops it.
    Any failure after the stop puts the previous data back and starts the service on it; if the service does not
    get healthy on the recovered data, the exchange is undone the same way.
  - Everything before the swap only writes the new storage, so a failed or killed recovery leaves the running
    database as it was; a failed recovery removes the new storage again.
  - One recovery of a server runs at a time (a lock in O(pitr_dir)). Each run first undoes what a recovery killed
    before its swap left behind, found through the journal C(recovery.json) that is written before the new storage
    is created (RV(cleaned_up)).
  - In check mode it reports the base backup and WAL range it would use and whether the target is inside the
    recoverable window, and changes nothing.
author:
  - stackops maintainers (@stackops)
options:
  target:
    description: V(time), V(lsn), V(name) (a restore point) or V(latest) (all WAL there is).
    type: str
    choices: [time, lsn, name, latest]
    required: true
  target_value:
    description: The time (ISO 8601 with an offset), the LSN (C(0/5A0003B8)) or the restore point's name.
    type: str
  backup_id:
    description: Base backup to start from; by default the newest complete one that ends before the target.
    type: str
  swap:
    description: Swap the database service onto the recovered data after the scratch check (destructive consent).
    type: bool
    default: false
  standby:
    description:
      - Use the warm standby (docs/pitr.md "Warm standby") when one was set up (C(pg_pitr standby=true)). For
        V(latest) and V(time) with O(swap=true), the standby is brought to the target and promoted, and the service
        swapped onto its storage the same way (exchange in one rename, health gate, undo). V(latest) first waits
        until the standby has received everything the primary had flushed; V(time) pauses its replay and needs the
        target inside its delay window. Otherwise, or when it is down or lags, the base-backup path runs, and
        RV(method_reason) says why.
    type: bool
    default: true
  start_timeout:
    description: Seconds to wait for the scratch cluster and for the service after the swap.
    type: int
    default: 600
extends_documentation_fragment:
  - stackops.runbooks.pitr
  - stackops.runbooks.pitr.scratch_check
  - stackops.runbooks.compose
  - stackops.runbooks.attributes
  - stackops.runbooks.attributes.changes_state
  - stackops.runbooks.attributes.actiongroup_compose_db_service_pitr_scratch_check
seealso:
  - module: stackops.runbooks.pg_pitr_backup
  - module: stackops.runbooks.pg_restore_point
'''

EXAMPLES = r'''
- name: Where would a recovery to 14:01:59 start, and is it inside the window?
  stackops.runbooks.pg_pitr_restore:
    pitr_dir: /srv/backups/shop-pitr
    server_name: shop
    target: time
    target_value: '2026-12-01 14:01:59+00'
    project_dir: /srv/shop
    compose_service: db
    check_user: app
    check_db: shop
  check_mode: true

- name: Undo the bad DELETE of 14:02
  stackops.runbooks.pg_pitr_restore:
    pitr_dir: /srv/backups/shop-pitr
    server_name: shop
    target: time
    target_value: '2026-12-01 14:01:59+00'
    swap: true
    project_dir: /srv/shop
    compose_service: db
    check_user: app
    check_db: shop
'''

RETURN = r'''
plan:
  description: Base backup, WAL range, recoverable window and whether the target lies inside it.
  returned: always
  type: dict
recovered_volume:
  description: Storage the recovery was written to; after a swap it holds the data from before the recovery.
  returned: success, not in check mode
  type: str
scratch:
  description: What the scratch check saw (databases, LSN, time).
  returned: success, not in check mode
  type: dict
swapped:
  description: Whether the service now runs on the recovered data.
  returned: always
  type: bool
durations:
  description: Seconds per phase - C(plan), C(wal) (the server's last WAL reaching the receiver), C(recover)
    (C(barman recover)), C(scratch_check), with the warm standby C(standby) (its catch-up) and C(promote)
    instead of C(wal), C(recover) and C(scratch_check), and with a swap C(swap) (stop, exchange, streaming set aside) and
    C(health) (the service's start through its health check).
  returned: success, not in check mode
  type: dict
method:
  description: V(standby) (the warm standby was promoted and swapped in) or V(base_backup) (Barman recovered a base
    backup beside the live data). In check mode it is in RV(plan).
  returned: success, not in check mode
  type: str
method_reason:
  description: Why this method; for V(base_backup) why the standby was not used (none set up, down, lagging, the
    target outside its delay window, a restore point or LSN target).
  returned: success, not in check mode
  type: str
standby_reseed:
  description: Whether the warm standby is gone (promoted, or stale after the swap) and C(pg_pitr standby=true)
    (C(stackops pitr enable), which the role runs after the swap) seeds a new one.
  returned: success, not in check mode
  type: bool
cleaned_up:
  description: What a recovery killed before its swap had left and this run removed (its scratch container, its new
    storage, Barman's staging copy), or, for one killed during its swap, the storage kept and recorded in
    C(swaps.json); in check mode what would be done.
  returned: always
  type: list
  elements: str
'''

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.stackops.runbooks.plugins.module_utils.pitr import PitrError, scratch_check_argument_spec
from ansible_collections.stackops.runbooks.plugins.module_utils.pitr_restore import Recovery


def main():
    module = AnsibleModule(argument_spec=scratch_check_argument_spec(
        target=dict(type='str', choices=['time', 'lsn', 'name', 'latest'], required=True),
        target_value=dict(type='str'),
        backup_id=dict(type='str'),
        swap=dict(type='bool', default=False),
        standby=dict(type='bool', default=True),
        start_timeout=dict(type='int', default=600),
    ), supports_check_mode=True)
    recovery = Recovery(module)
    try:
        module.exit_json(**recovery.run())
    except PitrError as exc:
        module.fail_json(msg=str(exc), cleaned_up=recovery.cleaned)


if __name__ == '__main__':
    main()
