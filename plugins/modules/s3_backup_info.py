#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, stackops maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function
__metaclass__ = type

DOCUMENTATION = r'''
---
module: s3_backup_info
short_description: List (and optionally check) the off-site copies of backup sets on an S3 target
version_added: 0.1.0
description:
  - Lists the complete copies (those with a completion marker) below the target's prefix, newest first, and the
    unfinished ones, which never count.
  - With O(remote_check) every object of the listed copies is compared with the marker, by size and ETag (V(etag)) or by
    reading it back and comparing sha256 digests too (V(download)). Problems are returned, not raised, so a listing
    always completes; RV(ok) says whether all checked copies are intact.
  - Reads only; never writes or deletes anything.
author:
  - stackops maintainers (@stackops)
options:
  database:
    description: Only copies of this database; the RPO values need it.
    type: str
  backup_id:
    description: Only this copy.
    type: str
  remote_check:
    description: Check the listed copies against their markers (V(none) only lists).
    type: str
    choices: [none, etag, download]
    default: none
extends_documentation_fragment:
  - stackops.runbooks.s3
  - stackops.runbooks.attributes
  - stackops.runbooks.attributes.info_module
seealso:
  - module: stackops.runbooks.s3_backup_copy
'''

EXAMPLES = r'''
- name: Check every copy of appdb on the self-hosted target
  stackops.runbooks.s3_backup_info:
    database: appdb
    bucket: backups
    endpoint_url: https://s3.backup.internal:9000
    path_style: true
    remote_check: etag
  register: offsite
'''

RETURN = r'''
target_name:
  description: O(target_name), or the bucket when none was given.
  returned: always
  type: str
target:
  description: The target, as C(s3://bucket/prefix/ at endpoint).
  returned: always
  type: str
backups:
  description:
    - Complete copies, newest first (id, database, started_at, finished_at, age_seconds, size_bytes,
      remote_size_bytes, verified, copied_at, checksum, encrypted, group, group_databases, location); C(group) is
      the C(--all-databases) group id of a grouped copy, else V(null).
  returned: always
  type: list
  elements: dict
unfinished:
  description: Prefixes without a valid completion marker (uploads in progress or interrupted).
  returned: always
  type: list
  elements: dict
problems:
  description: With O(remote_check), the problems found per copy id (empty lists are left out).
  returned: always
  type: dict
ok:
  description: V(false) when a checked copy has problems.
  returned: always
  type: bool
latest:
  description: Newest copy of O(database) (id, age_seconds), or V(null).
  returned: always
  type: dict
latest_verified:
  description: Newest verified copy of O(database) (id, age_seconds), or V(null).
  returned: always
  type: dict
rpo_seconds:
  description: With O(database), age of its newest verified intact copy; V(null) when there is none.
  returned: always
  type: int
'''

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.stackops.runbooks.plugins.module_utils.backup_set import BackupError
from ansible_collections.stackops.runbooks.plugins.module_utils.offsite import MARKER, S3Target, s3_target_spec
from ansible_collections.stackops.runbooks.plugins.module_utils.offsite_plan import check_listed, listing_result


def main():
    spec = s3_target_spec()
    spec.update(
        database=dict(type='str'),
        backup_id=dict(type='str'),
        remote_check=dict(type='str', choices=['none', 'etag', 'download'], default='none'),
    )
    module = AnsibleModule(argument_spec=spec, supports_check_mode=True)
    params = module.params
    try:
        target = S3Target(module, params)
        sets, unfinished = target.catalog(params['database'])
        if params['backup_id']:
            sets = [entry for entry in sets if entry['id'] == params['backup_id']]
        problems = {}
        if params['remote_check'] != 'none':
            problems = check_listed(sets, lambda entry: target.check_copy(
                target.get_json(target.key(entry['id'], MARKER)), deep=params['remote_check'] == 'download'))
    except BackupError as exc:
        module.fail_json(msg='listing the off-site copies failed: %s' % exc)
    module.exit_json(target=target.label, target_name=target.name,
                     **listing_result(sets, unfinished, problems, params['database']))


if __name__ == '__main__':
    main()
