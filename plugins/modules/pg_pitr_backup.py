#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, stackops maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import (absolute_import, division, print_function)
__metaclass__ = type

DOCUMENTATION = r'''
---
module: pg_pitr_backup
short_description: Take a compressed physical base backup with Barman and verify it
version_added: 0.2.0
description:
  - Runs C(barman backup --wait) (C(pg_basebackup) over the replication protocol, compressed on the server), which
    returns once the WAL the backup needs is archived.
  - Verifies the new backup before it counts. It is recovered to its consistency point into a scratch directory,
    checked with C(pg_verifybackup) against the backup's manifest, then started in a scratch container of the
    database service's image (no network) and queried as O(check_user). The verdict, passed or failed, is recorded in
    C(verified/<backup_id>.json); a backup that failed it is never chosen for a recovery.
  - A verification killed with SIGKILL leaves its scratch copy and container; both are named in a journal
    (C(verification.json)) before they exist, and the next run removes them (RV(cleaned_up)).
  - Retention runs here, after a passed verification only, not in Barman (whose configuration has no retention
    policy, so C(barman cron) deletes nothing). It keeps every base backup inside the recovery window, the newest
    one before it, at least O(minimum_backups), and always the newest verified one; it deletes the others with
    C(barman delete), oldest first, which also drops the WAL only they needed.
  - A backup that fails stays in Barman's catalog with status C(FAILED) and is never marked verified.
  - In check mode it reports the backup it would take and changes nothing.
author:
  - stackops maintainers (@stackops)
options:
  verify:
    description: Verify the new backup (manifest check and a start in a scratch container).
    type: bool
    default: true
  apply_retention:
    description: Apply the retention policy after a verified backup.
    type: bool
    default: true
  recovery_window_days:
    description: Retention keeps the base backups needed to recover to any point of the last this many days.
    type: int
    default: 7
  minimum_backups:
    description: Retention never keeps fewer usable base backups than this.
    type: int
    default: 1
extends_documentation_fragment:
  - stackops.runbooks.pitr
  - stackops.runbooks.pitr.scratch_check
  - stackops.runbooks.compose
  - stackops.runbooks.attributes
  - stackops.runbooks.attributes.changes_state
  - stackops.runbooks.attributes.actiongroup_compose_db_service_pitr_scratch_check
seealso:
  - module: stackops.runbooks.pg_pitr
  - module: stackops.runbooks.pg_pitr_info
'''

EXAMPLES = r'''
- name: Physical backup of the shop database, verified
  stackops.runbooks.pg_pitr_backup:
    pitr_dir: /srv/backups/shop-pitr
    server_name: shop
    project_dir: /srv/shop
    compose_service: db
    check_user: app
    check_db: shop
  register: base
'''

RETURN = r'''
backup:
  description: The new base backup as the catalog lists it (id, begin/end time and LSN, size, verified).
  returned: success, not in check mode
  type: dict
verification:
  description: What the verification saw (manifest check output, databases seen by the scratch query, duration).
  returned: when verified
  type: dict
durations:
  description: Seconds spent in the backup and in the verification.
  returned: success, not in check mode
  type: dict
retention_deleted:
  description: Base backups retention deleted, oldest first.
  returned: success, not in check mode
  type: list
  elements: str
cleaned_up:
  description: What a killed verification had left and this run removed (in check mode, would remove).
  returned: always
  type: list
  elements: str
'''

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.stackops.runbooks.plugins.module_utils.pitr import PitrError, scratch_check_argument_spec
from ansible_collections.stackops.runbooks.plugins.module_utils.pitr_backup import BaseBackup


def main():
    module = AnsibleModule(argument_spec=scratch_check_argument_spec(
        verify=dict(type='bool', default=True),
        apply_retention=dict(type='bool', default=True),
        recovery_window_days=dict(type='int', default=7),
        minimum_backups=dict(type='int', default=1),
    ), supports_check_mode=True)
    try:
        module.exit_json(**BaseBackup(module).run())
    except PitrError as exc:
        module.fail_json(msg=str(exc))


if __name__ == '__main__':
    main()
