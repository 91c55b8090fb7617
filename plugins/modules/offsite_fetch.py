#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, stackops maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function
__metaclass__ = type

DOCUMENTATION = r'''
---
module: offsite_fetch
short_description: Download a checked off-site copy (a set, a group, or a base backup with its WAL) from S3 or SSH
version_added: 0.3.0
description:
  - One module for every kind (O(kind)) and transport (O(type)); the old s3_backup_fetch, ssh_backup_fetch and
    s3_pitr_fetch names redirect here with their own options.
  - V(set) and V(group) - downloads one complete copy (O(backup_id), or the newest verified copy of O(database)), or
    every set of a group (O(group_id)), into C(<dest>/<id>.partial/), checks every object's size and sha256 against
    the completion marker (decrypting copies encrypted at copy time with O(age_identity_file)) and the set against its
    manifest, and only then makes it C(<dest>/<id>) with one rename. A set already in O(dest) that matches its
    manifest is reused. Every name is checked before anything is written.
  - V(pitr) - the first half of C(stackops restore --to-time/... --from-remote). Picks the base backup copy a
    recovery to O(target) needs (or O(backup_id)) and downloads it with every WAL file from its C(begin_wal) on into
    O(pitr_dir), each checked (and decrypted) before it is put in place, C(backup.info) last; then
    C(barman rebuild-xlogdb).
author:
  - stackops maintainers (@stackops)
options:
  database:
    description: Database whose newest verified copy is fetched when O(backup_id) is not given (V(set)).
    type: str
  backup_id:
    description: Copy (V(set)) or base backup (V(pitr)) to fetch.
    type: str
  dest:
    description: Directory to place the sets in (V(set), V(group); created if missing); use a work directory, not the backup dir of a live host.
    type: path
  require_verified:
    description: Refuse copies that were not verified before they were copied.
    type: bool
    default: true
  age_identity_file:
    description:
      - age identity (private key) file that decrypts copies encrypted at copy time. Checked against their recipients
        before anything is downloaded; an encrypted copy without it, or with a key of none of them, fails then.
    type: path
  target:
    description: What the recovery will stop at, as for M(stackops.runbooks.pg_pitr_restore) (V(pitr), where it is required).
    type: str
    choices: [time, lsn, name, latest]
  target_value:
    description: The time (with UTC offset), LSN or restore point name; not for V(latest).
    type: str
extends_documentation_fragment:
  - stackops.runbooks.offsite_target
  - stackops.runbooks.offsite_target.barman
  - stackops.runbooks.s3
  - stackops.runbooks.ssh
  - stackops.runbooks.attributes
  - stackops.runbooks.attributes.changes_state
  - stackops.runbooks.attributes.actiongroup_pitr
notes:
  - Check mode reads the target and reports what would be downloaded; it downloads nothing.
seealso:
  - module: stackops.runbooks.offsite_copy
  - module: stackops.runbooks.pg_backup_restore
  - module: stackops.runbooks.pg_pitr_restore
'''

EXAMPLES = r'''
- name: Bring the newest verified copy of appdb back from S3
  stackops.runbooks.offsite_fetch:
    type: s3
    database: appdb
    dest: /var/backups/stackops/.from-remote
    bucket: acme-db-backups
    prefix: prod/db1

- name: Bring the base backup and WAL for a recovery to 14:01:59 back from the backup host
  stackops.runbooks.offsite_fetch:
    type: ssh
    kind: pitr
    pitr_dir: /var/backups/stackops-pitr
    server_name: shop
    target: time
    target_value: "2026-12-01 14:01:59+00"
    host: backup1.example.com
    path: /srv/backups/web1
'''

RETURN = r'''
kind:
  description: The kind fetched.
  returned: success
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
  description: The target (for V(pitr) its C(.pitr/<server>/)).
  returned: always
  type: str
backup_id:
  description: The copy or base backup fetched.
  returned: success, when O(group_id) is not given
  type: str
group_id:
  description: The group fetched.
  returned: success, when O(group_id) is given
  type: str
backup_ids:
  description: The copies fetched (one, or every set of the group).
  returned: success, when O(kind) is not V(pitr)
  type: list
  elements: str
path:
  description: The local set, C(<dest>/<backup id>) (with O(group_id), O(dest)).
  returned: success, when O(kind) is not V(pitr)
  type: str
encrypted:
  description: The copy is encrypted (at rest, or at copy time).
  returned: success, when O(kind) is not V(pitr)
  type: bool
wal_downloaded:
  description: WAL files downloaded (in check mode, that would be).
  returned: when O(kind) is V(pitr)
  type: int
wal_present:
  description: WAL files that were already in place and matched.
  returned: when O(kind) is V(pitr)
  type: int
wal_last:
  description: Newest WAL segment now in the local archive from the target, or V(null).
  returned: when O(kind) is V(pitr)
  type: str
downloaded_bytes:
  description: Bytes downloaded.
  returned: always
  type: int
throughput_mib_per_second:
  description: Download rate of this run (including the checks).
  returned: always
  type: float
duration_seconds:
  description: Time the module took.
  returned: always
  type: float
'''

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.stackops.runbooks.plugins.module_utils.offsite_family import fetch_spec, run_fetch


def main():
    run_fetch(AnsibleModule(argument_spec=fetch_spec(), supports_check_mode=True,
                            mutually_exclusive=[('backup_id', 'group_id')]))


if __name__ == '__main__':
    main()
