#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, stackops maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function
__metaclass__ = type

DOCUMENTATION = r'''
---
module: pg_backup_info
short_description: Catalog of PostgreSQL backup sets with verification state and RPO
version_added: 0.1.0
description:
  - Lists the complete backup sets in O(backup_dir) written by M(stackops.runbooks.pg_backup), newest first, with age,
    size, verification state and table counts, and the sets still being written or abandoned (C(.partial)).
  - Reports the age of the newest verified set per database, the recovery point you could restore to now.
  - Reads files only.
author:
  - stackops maintainers (@stackops)
options:
  database:
    description: Only list sets of this database.
    type: str
extends_documentation_fragment:
  - stackops.runbooks.postgres.catalog
  - stackops.runbooks.attributes
  - stackops.runbooks.attributes.info_module
  - stackops.runbooks.attributes.actiongroup_catalog
seealso:
  - module: stackops.runbooks.pg_backup
  - module: stackops.runbooks.pg_backup_retention
'''

EXAMPLES = r'''
- name: How old is our newest verified backup?
  stackops.runbooks.pg_backup_info:
    backup_dir: /var/backups/stackops
    database: appdb
  register: catalog

- name: Alert on RPO
  ansible.builtin.assert:
    that: catalog.latest_verified.age_seconds < 86400
'''

RETURN = r'''
backups:
  description: Complete sets, newest first.
  returned: always
  type: list
  elements: dict
  contains:
    id:
      description: Backup id.
      type: str
    database:
      description: Database the set was taken from.
      type: str
    path:
      description: Directory of the set.
      type: str
    started_at:
      description: UTC start time of the dump.
      type: str
    age_seconds:
      description: Seconds since the dump started.
      type: int
    size_bytes:
      description: Size of the set.
      type: int
    verified:
      description: V(true)/V(false) as recorded by M(stackops.runbooks.pg_backup_verify); V(null) if never verified.
      type: bool
    tables:
      description: Tables in the manifest.
      type: int
    rows:
      description: Rows counted in the manifest.
      type: int
    encrypted:
      description: Whether the set is encrypted at rest (M(stackops.runbooks.pg_backup_encrypt)); C(size_bytes) is
        then the size of the ciphertext.
      type: bool
    encryption_recipients:
      description: The age recipients an encrypted set is encrypted to (empty otherwise).
      type: list
      elements: str
in_progress:
  description: C(.partial) sets (being written now, or left by a killed run).
  returned: always
  type: list
  elements: dict
invalid:
  description:
    - Directories whose C(manifest.json) is missing, damaged or hand-made, or whose manifest C(id) or C(database)
      disagrees with the directory name (a set copied or renamed by hand). Each has C(id) (the directory name),
      C(path) and C(problem). They are never restored from and never deleted by retention.
  returned: always
  type: list
  elements: dict
latest:
  description: Newest set per database (id, age_seconds), V(null) when there is none for O(database).
  returned: always
  type: dict
latest_verified:
  description: Newest verified set per database; when O(database) is given, that database's (id, age_seconds) or V(null).
  returned: always
  type: dict
rpo_seconds:
  description: With O(database), age of its newest verified set (V(null) when none is verified).
  returned: always
  type: int
total_size_bytes:
  description: Size of all listed sets.
  returned: always
  type: int
'''

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.stackops.runbooks.plugins.module_utils.backup_catalog import catalog_spec, scan


def newest(sets, predicate=lambda entry: True):
    by_db = {}
    for entry in sets:
        if predicate(entry) and entry['database'] not in by_db:
            by_db[entry['database']] = dict(id=entry['id'], age_seconds=entry['age_seconds'], path=entry['path'])
    return by_db


def main():
    spec = catalog_spec()
    spec.update(database=dict(type='str'))
    module = AnsibleModule(argument_spec=spec, supports_check_mode=True)
    database = module.params['database']
    sets, partials, invalid = scan(module.params['backup_dir'], database)
    latest = newest(sets)
    verified = newest(sets, lambda entry: entry['verified'])
    if database is not None:
        latest, verified = latest.get(database), verified.get(database)
    module.exit_json(
        changed=False, backups=sets, in_progress=partials, invalid=invalid, latest=latest, latest_verified=verified,
        rpo_seconds=verified['age_seconds'] if database is not None and verified else None,
        total_size_bytes=sum(entry['size_bytes'] for entry in sets))


if __name__ == '__main__':
    main()
