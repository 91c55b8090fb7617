#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, stackops maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function
__metaclass__ = type

DOCUMENTATION = r'''
---
module: pg_backup_verify
short_description: Prove a PostgreSQL backup set restores to what was dumped
version_added: 0.1.0
description:
  - Re-computes the sha256 of every file in a backup set written by M(stackops.runbooks.pg_backup) and compares them
    with its manifest.
  - Then restores the set into a scratch database on the same server (a unique name, always dropped afterwards,
    also on failure) and compares per-table row counts, and content checksums when the manifest has them, with the manifest.
  - Records the outcome in C(verification.json) beside the manifest, which M(stackops.runbooks.pg_backup_info) and
    M(stackops.runbooks.pg_backup_retention) read, and in C(<backup_dir>/last_backup.json) when that file describes
    this set (O(stackops.runbooks.pg_backup#module:record_last_backup)).
  - The trial restore is the one M(stackops.runbooks.pg_backup_restore) runs, so it proves the path an incident
    would take. A custom-format dump is streamed (no decompressed copy, rows loaded over O(jobs) connections).
    Directory and plain formats restore from a file.
  - Holds the per-database lock of the backed-up database while it runs.
  - A set encrypted at rest (M(stackops.runbooks.pg_backup_encrypt)) is decrypted with O(age_identity_file) for the
    trial restore (ciphertext checked before, plaintext after); a key that is not one of its recipients fails before
    anything runs, and records nothing.
author:
  - stackops maintainers (@stackops)
options:
  backup_id:
    description: Backup set to verify. Without it, the newest set of O(database).
    type: str
  database:
    description: Database whose newest backup set is verified when O(backup_id) is not given.
    type: str
  trial_restore:
    description: Restore into a scratch database and compare tables; with V(false) only the checksums are checked.
    type: bool
    default: true
  compare_content:
    description: Compare per-table content checksums too, when the manifest has them (O(stackops.runbooks.pg_backup#module:content_checksums)).
    type: bool
    default: true
  fail_unverified:
    description: Fail the task when the set does not verify; with V(false) return RV(verified=false) instead.
    type: bool
    default: true
requirements:
  - psycopg (psycopg 3) on the managed host
extends_documentation_fragment:
  - stackops.runbooks.postgres
  - stackops.runbooks.postgres.tools
  - stackops.runbooks.postgres.backup_catalog
  - stackops.runbooks.postgres.restore_session
  - stackops.runbooks.attributes
  - stackops.runbooks.attributes.changes_state
  - stackops.runbooks.attributes.actiongroup_catalog_compose_db_service_postgresql
notes:
  - Check mode checks the file checksums and reports the trial restore it would run; it creates no database and records nothing.
seealso:
  - module: stackops.runbooks.pg_backup
  - module: stackops.runbooks.pg_backup_restore
'''

EXAMPLES = r'''
- name: Verify the newest backup of appdb
  stackops.runbooks.pg_backup_verify:
    database: appdb
    backup_dir: /var/backups/stackops
    login_user: app
    login_password_file: /etc/stackops/db_password
  register: verification
'''

RETURN = r'''
cleaned_up:
  description:
    - What killed runs on this database had left and this run removed under the lock, one line each (scratch
      databases dropped, work directories and C(*.tmp-<pid>) files removed, connections to a database blocked by a
      killed swap allowed again). Empty when there was nothing.
  returned: when the lock was taken
  type: list
  elements: str
verified:
  description: Whether every check passed.
  returned: always
  type: bool
encrypted:
  description: Whether the set is encrypted at rest (M(stackops.runbooks.pg_backup_encrypt)); it was decrypted with
    O(age_identity_file) for the trial restore.
  returned: when the set was found
  type: bool
backup_id:
  description: The set that was checked.
  returned: when a set was found
  type: str
path:
  description: Directory of the set.
  returned: when a set was found
  type: str
checksums_ok:
  description: Whether every file matched the manifest.
  returned: when a set was found
  type: bool
differences:
  description: Every mismatch found, one readable line each.
  returned: always
  type: list
  elements: str
scratch_database:
  description: Name of the scratch database used (already dropped).
  returned: when a trial restore ran
  type: str
content_compared:
  description: Whether content checksums were compared (not only row counts).
  returned: when a trial restore ran
  type: bool
restore_method:
  description: How the trial restore ran - C(stream), C(pg_restore) (from a file) or C(psql) (plain SQL).
  returned: when a trial restore ran
  type: str
phase_seconds:
  description:
    - Seconds per phase of the trial restore. Streamed, C(checksums) (hashing the set), C(toc), C(pre-data),
      C(data), C(post-data) and C(compare) (the row counts, beside C(post-data)); otherwise C(compare) only.
  returned: when a trial restore ran
  type: dict
duration_seconds:
  description: Time the verification took.
  returned: always
  type: float
metrics:
  description:
    - The set's Prometheus textfile (node_exporter textfile collector) with the verification's outcome
      (C(stackops_backup_last_success_timestamp_seconds), C(_size_bytes), C(_duration_seconds), C(_verified)).
  returned: when the verification ran
  type: str
'''

import os
import time

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.stackops.runbooks.plugins.module_utils.backup_catalog import (
    backup_metrics, check_files, common_module_spec, find_set, record_verification)
from ansible_collections.stackops.runbooks.plugins.module_utils.backup_lock import DatabaseLock
from ansible_collections.stackops.runbooks.plugins.module_utils.backup_set import (
    BackupError, ensure_backup_dir, mark_last_backup_verified)
from ansible_collections.stackops.runbooks.plugins.module_utils.backup_verify import verification_record, verify_set
from ansible_collections.stackops.runbooks.plugins.module_utils.encryption import require_identity
from ansible_collections.stackops.runbooks.plugins.module_utils.pg import describe_target, prepare
from ansible_collections.stackops.runbooks.plugins.module_utils.restore_session import restore_session_spec
from ansible_collections.stackops.runbooks.plugins.module_utils.run_journal import RunJournal, clean_up_after_killed_runs


def main():
    spec = common_module_spec()
    spec.update(restore_session_spec())
    spec.update(
        backup_id=dict(type='str'),
        database=dict(type='str'),
        trial_restore=dict(type='bool', default=True),
        compare_content=dict(type='bool', default=True),
        fail_unverified=dict(type='bool', default=True),
    )
    module = AnsibleModule(argument_spec=spec, required_one_of=[('backup_id', 'database')], supports_check_mode=True)
    prepare(module)
    params = module.params
    clock = time.monotonic()
    result = dict(changed=False, verified=False, differences=[])
    try:
        set_dir, manifest = find_set(params['backup_dir'], params['backup_id'], params['database'])
        result.update(backup_id=manifest['id'], path=set_dir, encrypted=bool(manifest.get('encryption')))
        if manifest.get('encryption') and params['trial_restore']:
            require_identity(module, manifest, params['age_identity_file'])
        if module.check_mode:
            problems = check_files(set_dir, manifest)
            result.update(checksums_ok=not problems, differences=problems, verified=not problems and not params['trial_restore'],
                          msg='checksums %s; would restore %s into a scratch database on %s and compare %d tables' % (
                              'match' if not problems else 'DIFFER', manifest['id'], describe_target(params),
                              len(manifest.get('tables') or [])))
            result['duration_seconds'] = round(time.monotonic() - clock, 3)
            module.exit_json(**result)
        # The decompressed dump and the list files hold the rows too: readable by the backup owner only.
        os.umask(0o077)
        ensure_backup_dir(params['backup_dir'])
        with DatabaseLock(params['backup_dir'], manifest['database'], 'verify', params['lock_timeout']):
            result['cleaned_up'] = clean_up_after_killed_runs(params, [manifest['database']])
            result.update(verify_set(module, params, set_dir, manifest, RunJournal(params['backup_dir'], manifest['database']),
                                     params['jobs'], compare_content=params['compare_content'],
                                     trial=params['trial_restore'], streaming=params['streaming']))
            result['verified'] = not result['differences']
            result['duration_seconds'] = round(time.monotonic() - clock, 3)
            record_verification(set_dir, verification_record(result, params['trial_restore']))
            mark_last_backup_verified(params['backup_dir'], manifest['id'], result['verified'])
            result['metrics'] = backup_metrics(manifest, result['verified'])
            result['changed'] = True
    except BackupError as exc:
        result['duration_seconds'] = round(time.monotonic() - clock, 3)
        module.fail_json(msg='verification could not run: %s' % exc, **result)
    except Exception as exc:
        result['duration_seconds'] = round(time.monotonic() - clock, 3)
        module.fail_json(msg='verification of %s on %s failed: %s' % (
            result.get('backup_id'), describe_target(params), exc), **result)

    if result['verified']:
        result['msg'] = 'backup %s verified' % result['backup_id']
        module.exit_json(**result)
    result['msg'] = 'backup %s did NOT verify: %s; do not restore from it, use an older verified backup' % (
        result['backup_id'], '; '.join(result['differences'][:5]))
    if params['fail_unverified']:
        module.fail_json(**result)
    module.exit_json(**result)


if __name__ == '__main__':
    main()
