#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, stackops maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function
__metaclass__ = type

DOCUMENTATION = r'''
---
module: offsite_info
short_description: List (and optionally check) the off-site copies on an S3 or SSH target
version_added: 0.3.0
description:
  - Lists the complete copies of backup sets (those with a completion marker) newest first, the C(--all-databases)
    groups they form, and the unfinished copies, which never count. The old s3_backup_info and ssh_backup_info names
    redirect here.
  - With O(remote_check) every object of the listed copies is compared with its marker (S3 - size and ETag, V(download)
    or V(sha256) also read back; SSH - size and sha256 computed on the remote host). Problems are returned, not raised;
    RV(ok) says whether all checked copies are intact.
  - With O(kind=pitr), the base backup copies and the WAL catalog of Barman server O(server_name) instead.
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
  server_name:
    description: Barman server whose physical copies are listed (V(pitr)).
    type: str
  remote_check:
    description: Check the listed copies against their markers (V(none) only lists).
    type: str
    choices: [none, etag, download, sha256]
    default: none
extends_documentation_fragment:
  - stackops.runbooks.offsite_target
  - stackops.runbooks.s3
  - stackops.runbooks.ssh
  - stackops.runbooks.attributes
  - stackops.runbooks.attributes.info_module
seealso:
  - module: stackops.runbooks.offsite_copy
  - module: stackops.runbooks.offsite_fetch
'''

EXAMPLES = r'''
- name: Check every copy of appdb on the backup host
  stackops.runbooks.offsite_info:
    type: ssh
    database: appdb
    host: backup1.example.com
    path: /srv/backups/web1
    remote_check: sha256
  register: offsite
'''

RETURN = r'''
kind:
  description: What was listed (V(set) covers groups too, or V(pitr)).
  returned: always
  type: str
type:
  description: The transport of the target.
  returned: success
  type: str
target_name:
  description: O(target_name), or the bucket, or C(ssh://user@host:port/path).
  returned: always
  type: str
target:
  description: The target.
  returned: always
  type: str
backups:
  description:
    - Complete copies, newest first (id, database, started_at, finished_at, age_seconds, size_bytes,
      remote_size_bytes, verified, copied_at, checksum, encrypted, group, group_databases, location; C(intact)
      with O(remote_check)).
  returned: when O(kind) is not V(pitr)
  type: list
  elements: dict
groups:
  description: The C(--all-databases) groups of the listed copies (id, started_at, sets, databases, missing, complete, verified).
  returned: when O(kind) is not V(pitr)
  type: list
  elements: dict
unfinished:
  description: Copies without a valid completion marker (uploads in progress or interrupted).
  returned: always
  type: list
  elements: dict
problems:
  description: With O(remote_check), the problems found per copy id.
  returned: when O(kind) is not V(pitr)
  type: dict
ok:
  description: V(false) when a checked copy has problems.
  returned: when O(kind) is not V(pitr)
  type: bool
latest:
  description: Newest intact copy (id, age_seconds), or V(null).
  returned: when O(kind) is not V(pitr)
  type: dict
latest_verified:
  description: Newest intact verified copy (id, age_seconds), or V(null).
  returned: when O(kind) is not V(pitr)
  type: dict
rpo_seconds:
  description: With O(database), age of its newest verified intact copy; V(null) when there is none.
  returned: when O(kind) is not V(pitr)
  type: int
base_backups:
  description: Complete base backup copies, newest first (id, begin_time, end_time, begin_wal, end_wal, verified, remote_size_bytes).
  returned: when O(kind) is V(pitr)
  type: list
  elements: dict
wal_files:
  description: WAL files in the target's WAL catalog.
  returned: when O(kind) is V(pitr)
  type: int
wal_last:
  description: Newest WAL segment in the catalog, or V(null).
  returned: when O(kind) is V(pitr)
  type: str
wal_floor:
  description: Oldest segment remote retention keeps, or V(null).
  returned: when O(kind) is V(pitr)
  type: str
'''

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.stackops.runbooks.plugins.module_utils.offsite_family import info_spec, run_info


def main():
    run_info(AnsibleModule(argument_spec=info_spec(), supports_check_mode=True))


if __name__ == '__main__':
    main()
