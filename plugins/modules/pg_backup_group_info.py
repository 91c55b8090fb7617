#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, stackops maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function
__metaclass__ = type

DOCUMENTATION = r'''
---
module: pg_backup_group_info
short_description: Find the backup sets one all-databases run wrote
version_added: 0.2.0
description:
  - C(stackops backup --all-databases) backs up every database of a server, each into its own set, and records one
    run id in every manifest (M(stackops.runbooks.pg_backup) O(stackops.runbooks.pg_backup#module:group_id)). This
    module lists those groups in O(backup_dir) and picks one for a disaster-recovery restore.
  - Reads files only.
author:
  - stackops maintainers (@stackops)
options:
  group_id:
    description: The group to pick; by default the newest complete group whose sets are all verified.
    type: str
  allow_incomplete:
    description:
      - Pick a group even when the set of one of its databases is missing (that database's backup failed in the
        run). Without it such a group is refused, so a disaster-recovery restore never silently leaves a database out.
    type: bool
    default: false
  require_verified:
    description: Fail unless every set of the picked group is verified.
    type: bool
    default: true
extends_documentation_fragment:
  - stackops.runbooks.postgres.catalog
  - stackops.runbooks.attributes
  - stackops.runbooks.attributes.info_module
  - stackops.runbooks.attributes.actiongroup_catalog
  - stackops.runbooks.caller
seealso:
  - module: stackops.runbooks.pg_backup
  - module: stackops.runbooks.pg_globals_restore
  - module: stackops.runbooks.pg_backup_restore
'''

EXAMPLES = r'''
- name: The newest complete all-databases backup
  stackops.runbooks.pg_backup_group_info:
    backup_dir: /var/backups/stackops
  register: found

- name: Restore each of its databases
  stackops.runbooks.pg_backup_restore:
    backup_dir: /var/backups/stackops
    backup_id: "{{ item.id }}"
    target_database: "{{ item.database }}"
  loop: "{{ found.group.sets }}"
'''

RETURN = r'''
groups:
  description: Every group in O(backup_dir), newest first (C(id), C(started_at), C(databases), C(verified), C(complete), C(missing)).
  returned: always
  type: list
  elements: dict
group:
  description:
    - The picked group - C(id), C(started_at) (its first set's start), C(databases), C(verified) (all sets verified),
      C(complete) (a set for every database the run meant to back up), C(missing) (databases without a set),
      C(globals_backup_id) (a set holding C(globals.sql), or V(null)) and C(sets) (C(id), C(database),
      C(verified), C(has_globals), C(size_bytes)) in database name order.
  returned: success
  type: dict
'''

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.stackops.runbooks.plugins.module_utils.backup_catalog import catalog, catalog_spec, groups_of
from ansible_collections.stackops.runbooks.plugins.module_utils.caller_words import option_variables_spec, setting


def main():
    spec = catalog_spec()
    spec.update(group_id=dict(type='str'), require_verified=dict(type='bool', default=True),
                allow_incomplete=dict(type='bool', default=False))
    spec.update(option_variables_spec())
    module = AnsibleModule(argument_spec=spec, supports_check_mode=True)
    params = module.params
    groups = groups_of(catalog(params['backup_dir'])[0])
    summary = [dict((key, group[key]) for key in ('id', 'started_at', 'databases', 'verified', 'complete', 'missing'))
               for group in groups]
    if params['group_id']:
        picked = [group for group in groups if group['id'] == params['group_id']]
        if not picked:
            module.fail_json(msg='no backup group %r in %s; back up all databases first or set %s to one of %s' % (
                params['group_id'], params['backup_dir'], setting(params, 'group_id', 'ID'),
                [group['id'] for group in groups] or 'none'), groups=summary)
    else:
        picked = [group for group in groups if (group['verified'] or not params['require_verified'])
                  and (group['complete'] or params['allow_incomplete'])]
        if not picked:
            module.fail_json(msg='no %sall-databases backup group in %s; back up all databases first, or set %s' % (
                'complete verified ' if params['require_verified'] else 'complete ', params['backup_dir'],
                setting(params, 'group_id', 'ID')), groups=summary)
    group = picked[0]
    if group['missing'] and not params['allow_incomplete']:
        module.fail_json(msg='backup group %s is incomplete: no set of %s (their backup failed in that run); pick '
                             'another group (%s) or set %s to restore the others' % (
                                 group['id'], ', '.join(group['missing']), setting(params, 'group_id', 'ID'),
                                 setting(params, 'allow_incomplete', True)), groups=summary, group=group)
    if params['require_verified'] and not group['verified']:
        module.fail_json(msg='backup group %s has unverified sets (%s); verify them with stackops.runbooks.'
                             'pg_backup_verify or set %s' % (
                                 group['id'], ', '.join(m['id'] for m in group['sets'] if not m['verified']),
                                 setting(params, 'require_verified', False)),
                         groups=summary, group=group)
    module.exit_json(changed=False, groups=summary, group=group)


if __name__ == '__main__':
    main()
