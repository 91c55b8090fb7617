#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, stackops maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function
__metaclass__ = type

DOCUMENTATION = r'''
---
module: ssh_backup_info
short_description: List the complete off-site copies on an SSH host and optionally check them
version_added: 0.1.0
description:
  - Lists the copies below O(path) on the SSH host, the complete ones (with their completion marker) newest first,
    and the unfinished ones, which never count. A copy is identified by its directory name, the backup id.
  - With O(remote_check=sha256) the size and sha256 of every file of every listed copy is computed on the remote
    host and compared with its marker; a changed or damaged file is reported in RV(problems).
author:
  - stackops maintainers (@stackops)
options:
  database:
    description: Only copies of this database; all databases when omitted.
    type: str
  backup_id:
    description: Only this copy.
    type: str
  remote_check:
    description: V(none) reads the markers only; V(sha256) also checks every file on the remote host.
    type: str
    choices: [none, sha256]
    default: none
extends_documentation_fragment:
  - stackops.runbooks.ssh
  - stackops.runbooks.attributes
  - stackops.runbooks.attributes.info_module
seealso:
  - module: stackops.runbooks.ssh_backup_copy
  - module: stackops.runbooks.ssh_backup_fetch
'''

EXAMPLES = r'''
- name: Check every copy of appdb on the backup host
  stackops.runbooks.ssh_backup_info:
    database: appdb
    host: backup1.example.com
    user: stackops
    path: /srv/backups/web1
    identity_file: /etc/stackops/offsite_ed25519
    remote_check: sha256
  register: offsite
'''

RETURN = r'''
target_name:
  description: O(target_name), or C(ssh://user@host:port/path) when none was given.
  returned: always
  type: str
target:
  description: The target, as C(ssh://user@host:port/path).
  returned: always
  type: str
backups:
  description:
    - Complete copies, newest first (id, database, started_at, finished_at, age_seconds, size_bytes,
      remote_size_bytes, verified, copied_at, checksum, encrypted, group, group_databases, location; C(intact)
      with O(remote_check)).
  returned: always
  type: list
  elements: dict
unfinished:
  description: Copies without a (valid) completion marker (id, location, problem when the marker is wrong).
  returned: always
  type: list
  elements: dict
problems:
  description: Per copy id, what the check found wrong.
  returned: always
  type: dict
ok:
  description: No copy has a problem.
  returned: always
  type: bool
latest:
  description: Newest intact copy (id, age_seconds), or V(null).
  returned: always
  type: dict
latest_verified:
  description: Newest intact verified copy (id, age_seconds), or V(null).
  returned: always
  type: dict
rpo_seconds:
  description: Age of that copy in seconds (with O(database)), or V(null).
  returned: always
  type: int
'''

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.stackops.runbooks.plugins.module_utils.backup_set import BackupError
from ansible_collections.stackops.runbooks.plugins.module_utils.offsite_plan import check_listed, listing_result
from ansible_collections.stackops.runbooks.plugins.module_utils.ssh_offsite import SshTarget, ssh_target_spec


def main():
    spec = ssh_target_spec()
    spec.update(
        database=dict(type='str'),
        backup_id=dict(type='str'),
        remote_check=dict(type='str', choices=['none', 'sha256'], default='none'),
    )
    module = AnsibleModule(argument_spec=spec, supports_check_mode=True)
    params = module.params
    try:
        target = SshTarget(module, params)
        sets, unfinished = target.catalog(params['database'])
        if params['backup_id']:
            sets = [entry for entry in sets if entry['id'] == params['backup_id']]
        markers = dict((entry['id'], entry.pop('marker')) for entry in sets)
        problems = {}
        if params['remote_check'] == 'sha256':
            problems = check_listed(sets, lambda entry: target.check_copy(markers[entry['id']]))
    except BackupError as exc:
        module.fail_json(msg='listing the off-site copies over ssh failed: %s' % exc)
    module.exit_json(target=target.label, target_name=target.name,
                     **listing_result(sets, unfinished, problems, params['database']))


if __name__ == '__main__':
    main()
