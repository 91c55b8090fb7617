#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, stackops maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function
__metaclass__ = type

DOCUMENTATION = r'''
---
module: offsite_copy
short_description: Copy verified backup sets, groups or physical backups with their WAL off-site (S3 or SSH), check them, prune old copies
version_added: 0.3.0
description:
  - One module for every kind of copy (O(kind)) and every transport (O(type)); the old s3_backup_copy, ssh_backup_copy
    and s3_pitr_copy names redirect here with their own options.
  - V(set) and V(group) - copies verified backup sets of O(database) (the newest, all, or O(backup_id)), or every set
    of a complete verified C(--all-databases) group (O(group_id)), below C(<backup id>/) on the target. Unverified
    sets are never copied. Every file is hashed against the manifest as it is read; after the transfer every object is
    checked on the target (S3 - size and ETag, with O(remote_check=download) also sha256 read back; SSH - size and
    sha256 computed on the remote host). A damaged object is sent once more; only a copy that matches completely gets
    its completion marker C(stackops-copy.json), written last. A copy without it never counts.
  - V(pitr) - copies the WAL Barman archived for O(server_name) in O(pitr_dir) (incremental, by the target's WAL
    catalog C(wal-catalog.json) and its C(floor)) and verified base backups (O(base_backups) or O(backup_id)) below
    C(.pitr/<server>/). A base backup copy counts once its marker is written, after every object was checked and its
    WAL is in the catalog. C(pgpass), Barman's configuration and C(xlog.db) never leave the host.
  - Encryption with O(age_recipients) - S3 targets encrypt sets at copy time; SSH targets take only sets encrypted at
    rest to the recipients (M(stackops.runbooks.pg_backup_encrypt)) and refuse any other before anything is sent. Base
    backups and WAL (V(pitr)) are encrypted at copy time on every transport. A file that cannot be encrypted is never
    sent in plaintext.
  - With O(retention) - sets by the grandfather-father-son rules (groups as whole groups), base backups by
    O(retention.keep_last) with the WAL older than the oldest kept one. The newest verified copy is always kept.
    Copies under S3 Object Lock are kept and reported.
  - Holds the per-database lock while it reads a set, so local retention cannot delete it meanwhile.
author:
  - stackops maintainers (@stackops)
options:
  backup_dir:
    description: Directory holding the backup sets of this host (V(set) and V(group)).
    type: path
  lock_timeout:
    description: Seconds to wait for another backup, verify, restore or retention of the same database to finish.
    type: int
    default: 300
  database:
    description:
      - Database whose sets are copied (V(set)) and whose copies retention prunes; copies that belong to a group are
        left to O(group_id) runs, so single-set retention never breaks a group.
    type: str
  backup_id:
    description: Copy this set (V(set); it must be verified) or base backup (V(pitr); DONE and verified).
    type: str
  sets:
    description: V(set) without O(backup_id) - the newest verified set (V(latest)) or every verified set not on the target yet (V(all)).
    type: str
    choices: [latest, all]
    default: latest
  base_backups:
    description:
      - V(pitr) without O(backup_id) - the newest verified base backup (V(latest)), every verified one not on the
        target yet (V(all)), or none (V(none), only the WAL).
    type: str
    choices: [latest, all, none]
    default: latest
  retention:
    description:
      - Retention of the copies on this target; omit to keep every copy. V(pitr) reads only O(retention.keep_last).
    type: dict
    suboptions:
      keep_last:
        description: Newest copies to keep (default 7; 2 base backups for V(pitr)).
        type: int
      keep_daily:
        description: Days with a copy to keep (the newest of each day; default 7).
        type: int
      keep_weekly:
        description: ISO weeks with a copy to keep (default 4).
        type: int
      keep_monthly:
        description: Months with a copy to keep (default 3).
        type: int
  remote_check:
    description:
      - How the sent objects are checked before they count. V(etag) - sizes and the MD5 the S3 server computed;
        V(download) or V(sha256) - also sha256 read back. SSH targets always compare sha256 computed on the remote host.
    type: str
    choices: [etag, download, sha256]
    default: etag
  age_recipients:
    description:
      - age public keys (C(age1...)); empty sends the files as they are. See the description for what each transport
        and kind does with them.
    type: list
    elements: str
    default: []
  staging_dir:
    description: Where files are encrypted before they are sent; default O(backup_dir) (O(pitr_dir) for V(pitr)).
    type: path
  max_bandwidth_mib:
    description: Upper limit of the transfer rate in MiB/s; V(0) is unlimited.
    type: int
    default: 0
extends_documentation_fragment:
  - stackops.runbooks.offsite_target
  - stackops.runbooks.offsite_target.barman
  - stackops.runbooks.s3
  - stackops.runbooks.s3.object_lock
  - stackops.runbooks.ssh
  - stackops.runbooks.attributes
  - stackops.runbooks.attributes.changes_state
  - stackops.runbooks.attributes.actiongroup_catalog_pitr
notes:
  - Check mode reads the target and lists what would be copied and deleted; it sends and deletes nothing (not even
    Barman's C(archive-wal)).
seealso:
  - module: stackops.runbooks.offsite_info
  - module: stackops.runbooks.offsite_fetch
'''

EXAMPLES = r'''
- name: Copy the newest verified backup of appdb to S3, encrypted, and keep 14 copies
  stackops.runbooks.offsite_copy:
    type: s3
    backup_dir: /var/backups/stackops
    database: appdb
    bucket: acme-db-backups
    prefix: prod/db1
    age_recipients: [age1ql3z7hjy54pw3hyww5ayyfg7zqgvc7w3j2elw8zmrj2kg5sfn9aqmcac8p]
    retention: {keep_last: 14, keep_daily: 14, keep_weekly: 8, keep_monthly: 12}

- name: Copy a whole --all-databases group to the backup host
  stackops.runbooks.offsite_copy:
    type: ssh
    kind: group
    backup_dir: /var/backups/stackops
    group_id: 20261207T030000Z
    host: backup1.example.com
    user: stackops
    path: /srv/backups/web1
    identity_file: /etc/stackops/offsite_ed25519

- name: Ship the new WAL and the newest verified base backup to the backup host, encrypted
  stackops.runbooks.offsite_copy:
    type: ssh
    kind: pitr
    pitr_dir: /var/backups/stackops-pitr
    server_name: shop
    host: backup1.example.com
    path: /srv/backups/web1
    age_recipients: [age1ql3z7hjy54pw3hyww5ayyfg7zqgvc7w3j2elw8zmrj2kg5sfn9aqmcac8p]
    retention: {keep_last: 2}
'''

RETURN = r'''
kind:
  description: The kind copied (O(kind), or what the options meant).
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
  description: The target (C(s3://bucket/prefix/ at endpoint), C(ssh://user@host:port/path); for V(pitr) its C(.pitr/<server>/)).
  returned: always
  type: str
copied:
  description: Sets or base backups copied by this run (in check mode, that would be copied).
  returned: always
  type: list
  elements: str
present:
  description: Chosen sets or base backups that already had a complete copy on the target.
  returned: always
  type: list
  elements: str
uploaded_bytes:
  description: Bytes sent (ciphertext when encrypted), resumed parts not included.
  returned: always
  type: int
resumed_bytes:
  description: Bytes of parts reused from an unfinished S3 upload (V(set), V(group)).
  returned: when O(kind) is not V(pitr)
  type: int
resent:
  description: Objects that did not match after the first transfer and were sent again (C(<backup id>/<file>)).
  returned: when O(kind) is not V(pitr)
  type: list
  elements: str
wal_uploaded:
  description: WAL files sent and checked by this run (V(pitr); in check mode, that would be).
  returned: when O(kind) is V(pitr)
  type: int
wal_skipped:
  description: Archived WAL files not sent - already in the WAL catalog, or older than what it keeps (V(pitr)).
  returned: when O(kind) is V(pitr)
  type: int
wal_below_retention:
  description: Of RV(wal_skipped), the WAL files older than the catalog's floor (V(pitr)).
  returned: when O(kind) is V(pitr)
  type: int
objects_uploaded:
  description: Objects written by this run - WAL files, base backup files and markers (V(pitr)).
  returned: when O(kind) is V(pitr)
  type: int
encrypted:
  description: Whether this run encrypted what it sent (V(pitr)).
  returned: when O(kind) is V(pitr)
  type: bool
wal_last:
  description: Newest WAL segment in the target's WAL catalog after this run, or V(null) (V(pitr)).
  returned: when O(kind) is V(pitr)
  type: str
retention:
  description:
    - C(kept) (id to reasons), C(deleted) (ids; group ids with V(group), their sets in C(deleted_sets)),
      C(unfinished_removed), C(locked) (kept because of S3 Object Lock), C(refused) (objects the target refused to
      delete); for V(pitr) also C(wal_deleted) and C(wal_cutoff).
  returned: when O(retention) is given
  type: dict
group_id:
  description: The group copied.
  returned: when O(group_id) is given
  type: str
latest_verified:
  description:
    - Newest verified complete copy on the target after this run (id, age_seconds), the newest verified group with
      V(group), the newest verified base backup (id, end_time) with V(pitr); or V(null).
  returned: always
  type: dict
rpo_seconds:
  description: Age of that copy in seconds, or V(null) (V(set), V(group)).
  returned: when O(kind) is not V(pitr)
  type: int
throughput_mib_per_second:
  description: Transfer rate of this run (including encryption and checks).
  returned: always
  type: float
duration_seconds:
  description: Time the module took.
  returned: always
  type: float
'''

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.stackops.runbooks.plugins.module_utils.offsite_family import copy_spec, run_copy


def main():
    run_copy(AnsibleModule(argument_spec=copy_spec(), supports_check_mode=True,
                           mutually_exclusive=[('group_id', 'backup_id')]))


if __name__ == '__main__':
    main()
