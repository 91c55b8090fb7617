#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, stackops maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function
__metaclass__ = type

DOCUMENTATION = r'''
---
module: pg_backup_retention
short_description: Delete old PostgreSQL backup sets by a last/daily/weekly/monthly policy
version_added: 0.1.0
description:
  - Keeps the O(keep_last) newest sets of each database, plus the newest set of each of the last O(keep_daily) days,
    O(keep_weekly) ISO weeks and O(keep_monthly) months that have sets, and deletes the rest.
  - Never deletes the newest verified set of a database, a set still being written (C(.partial)), or any set of a
    database whose lock is held (a backup, verify or restore is running); it takes that lock while deleting.
  - Sets of an all-databases group (C(stackops backup --all-databases)) are kept or deleted as whole groups, never
    one database at a time, so a complete verified group always remains. The same policy counts groups (a group is
    verified when it is complete and all its sets are), and the newest verified group is always kept. A group is
    deleted under the locks of all its databases.
author:
  - stackops maintainers (@stackops)
options:
  database:
    description:
      - Only apply the policy to this database's sets and the groups holding one of them; by default to every
        database in O(backup_dir).
    type: str
  scope:
    description:
      - V(sets) applies the policy to the sets outside all-databases groups, per database; V(groups) to the groups;
        V(all) to both.
    type: str
    choices: [all, sets, groups]
    default: all
  keep_last:
    description: Newest sets to keep regardless of age.
    type: int
    default: 7
  keep_daily:
    description: Days (with sets) for which the newest set is kept.
    type: int
    default: 7
  keep_weekly:
    description: ISO weeks (with sets) for which the newest set is kept.
    type: int
    default: 4
  keep_monthly:
    description: Months (with sets) for which the newest set is kept.
    type: int
    default: 3
extends_documentation_fragment:
  - stackops.runbooks.postgres.backup_catalog
  - stackops.runbooks.attributes
  - stackops.runbooks.attributes.changes_state
  - stackops.runbooks.attributes.actiongroup_catalog
notes:
  - With O(lock_timeout) the module waits that long for a busy database; a database still busy then is skipped
    (reported in RV(busy)), not failed, because the next run will catch up.
  - Check mode lists what would be deleted and deletes nothing.
seealso:
  - module: stackops.runbooks.pg_backup_info
'''

EXAMPLES = r'''
- name: Keep a week of dailies, a month of weeklies and three monthlies
  stackops.runbooks.pg_backup_retention:
    backup_dir: /var/backups/stackops
    keep_last: 3
    keep_daily: 7
    keep_weekly: 4
    keep_monthly: 3
'''

RETURN = r'''
deleted:
  description: Ids of the sets deleted (in check mode, that would be deleted).
  returned: always
  type: list
  elements: str
kept:
  description: Ids kept, each with the rules that kept it (last, daily, weekly, monthly, newest verified).
  returned: always
  type: dict
deleted_groups:
  description: Ids of the all-databases groups deleted as a whole (in check mode, that would be deleted).
  returned: always
  type: list
  elements: str
kept_groups:
  description: Group ids kept, each with the rules that kept it.
  returned: always
  type: dict
busy:
  description:
    - Databases (and groups) left alone because their lock was held, with the holder.
    - Named C(busy), not C(skipped), because Ansible reads a true C(skipped) in a result as a skipped task.
  returned: always
  type: dict
freed_bytes:
  description: Size of the deleted sets.
  returned: always
  type: int
'''

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.stackops.runbooks.plugins.module_utils.backup_catalog import catalog, backup_dir_spec
from ansible_collections.stackops.runbooks.plugins.module_utils.backup_lock import DatabaseLock, LockTimeout
from ansible_collections.stackops.runbooks.plugins.module_utils.backup_retention import (
    apply_group_retention, apply_retention, retention_policy_problem, retention_policy_spec)
from ansible_collections.stackops.runbooks.plugins.module_utils.backup_set import BackupError, ensure_backup_dir


def main():
    spec = backup_dir_spec()
    spec.update(
        database=dict(type='str'),
        scope=dict(type='str', choices=['all', 'sets', 'groups'], default='all'),
    )
    spec.update(retention_policy_spec())
    module = AnsibleModule(argument_spec=spec, supports_check_mode=True)
    params = module.params
    problem = retention_policy_problem(params)
    if problem:
        module.fail_json(msg=problem)
    sets, dummy = catalog(params['backup_dir'], params['database'])
    databases = sorted(set(entry['database'] for entry in sets if not entry.get('group')))
    if params['scope'] == 'groups':
        databases = []
    result = dict(changed=False, deleted=[], kept={}, busy={}, freed_bytes=0, deleted_groups=[], kept_groups={})
    try:
        if sets and not module.check_mode:
            ensure_backup_dir(params['backup_dir'])
        for database in databases:
            lock = DatabaseLock(params['backup_dir'], database, 'retention', params['lock_timeout'])
            if module.check_mode:
                apply_retention(params['backup_dir'], database, params, result, delete=False)
                continue
            try:
                lock.acquire()
            except LockTimeout:
                result['busy'][database] = lock.holder()
                continue
            try:
                apply_retention(params['backup_dir'], database, params, result, delete=True)
            finally:
                lock.release()
        if params['scope'] != 'sets':
            apply_group_retention(params['backup_dir'], params, result, delete=not module.check_mode,
                                  lock_timeout=params['lock_timeout'], database=params['database'])
    except (BackupError, OSError) as exc:
        module.fail_json(msg='retention in %s failed: %s; sets not yet deleted are intact' % (params['backup_dir'], exc),
                         **result)
    result['changed'] = bool(result['deleted'])
    result['msg'] = '%s %d backup sets (%d bytes, %d whole groups)%s' % (
        'would delete' if module.check_mode else 'deleted', len(result['deleted']), result['freed_bytes'],
        len(result['deleted_groups']),
        '; skipped busy databases: %s' % ', '.join(sorted(result['busy'])) if result['busy'] else '')
    module.exit_json(**result)


if __name__ == '__main__':
    main()
