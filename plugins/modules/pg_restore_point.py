#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, stackops maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import (absolute_import, division, print_function)
__metaclass__ = type

DOCUMENTATION = r'''
---
module: pg_restore_point
short_description: Create a named PostgreSQL restore point and record it for point-in-time recovery
version_added: 0.2.0
description:
  - Runs C(pg_create_restore_point(name)), then C(pg_switch_wal()) so the WAL holding the point reaches the archive
    at once, and records the name with its LSN and time in C(marks.json) under O(pitr_dir); recovery to the name
    then starts from the newest base backup before that LSN.
  - Restore point names need not be unique in PostgreSQL (recovery stops at the first one); the module refuses a
    name it has already recorded unless O(replace=true).
  - In check mode it reports the restore point it would create.
author:
  - stackops maintainers (@stackops)
options:
  name:
    description: Name of the restore point.
    type: str
    required: true
  pitr_dir:
    description: Directory of the PITR configuration and records (see M(stackops.runbooks.pg_pitr)).
    type: path
    required: true
  replace:
    description: Record the name again even if it is recorded already.
    type: bool
    default: false
extends_documentation_fragment:
  - stackops.runbooks.postgres
  - stackops.runbooks.attributes
  - stackops.runbooks.attributes.changes_state
  - stackops.runbooks.attributes.actiongroup_postgresql
seealso:
  - module: stackops.runbooks.pg_pitr_restore
'''

EXAMPLES = r'''
- name: Restore point before a risky migration
  stackops.runbooks.pg_restore_point:
    name: before-migration-42
    pitr_dir: /srv/backups/shop-pitr
    login_user: app
    login_password_file: /srv/shop/secrets/db_password
    login_db: shop
'''

RETURN = r'''
restore_point:
  description: Name, LSN and time of the restore point.
  returned: success
  type: dict
'''

import json
import os
import time

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.stackops.runbooks.plugins.module_utils.pg import connect, describe_target, pg_connection_spec, prepare, psycopg
from ansible_collections.stackops.runbooks.plugins.module_utils.pitr import iso, write_if_changed


def main():
    spec = dict(name=dict(type='str', required=True), pitr_dir=dict(type='path', required=True),
                replace=dict(type='bool', default=False))
    spec.update(pg_connection_spec())
    module = AnsibleModule(argument_spec=spec, supports_check_mode=True)
    prepare(module)
    name = module.params['name']
    marks_file = os.path.join(module.params['pitr_dir'], 'marks.json')
    try:
        with open(marks_file) as handle:
            marks = json.load(handle)
    except (IOError, OSError, ValueError):
        marks = {}
    if name in marks and not module.params['replace']:
        module.fail_json(msg='restore point %s exists already (at %s); choose another name or set replace' % (
            name, marks[name]['at']))
    if len(name.encode('utf-8')) >= 64:
        module.fail_json(msg='restore point names must be shorter than 64 bytes')
    if module.check_mode:
        module.exit_json(changed=True, restore_point=dict(name=name))
    try:
        conn = connect(module.params)
        lsn = conn.execute('SELECT pg_create_restore_point(%s)::text', (name,)).fetchone()[0]
        conn.execute('SELECT pg_switch_wal()')
        conn.close()
    except psycopg.Error as exc:
        module.fail_json(msg='cannot create restore point %s at %s: %s' % (
            name, describe_target(module.params), str(exc).strip()))
    marks[name] = dict(lsn=lsn, at=iso(time.time()))
    write_if_changed(marks_file, json.dumps(marks, indent=2, sort_keys=True) + '\n', mode=0o600)
    module.exit_json(changed=True, restore_point=dict(name=name, lsn=lsn, at=marks[name]['at']))


if __name__ == '__main__':
    main()
