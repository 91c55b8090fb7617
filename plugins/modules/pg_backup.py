#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, stackops maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function
__metaclass__ = type

DOCUMENTATION = r'''
---
module: pg_backup
short_description: Take a checksummed, atomically published backup of a PostgreSQL database
version_added: 0.1.0
description:
  - Dumps one database with C(pg_dump) into a backup set C(<backup_dir>/<id>/) with a JSON manifest
    (server and tool versions, times, sizes, sha256 of every file, per-table row counts and optional content checksums).
  - The set is written under C(<id>.partial), fsynced and then renamed, so a failed, killed or disk-full backup never
    appears as a backup. Row counts are taken in the snapshot C(pg_dump) uses (C(pg_export_snapshot) and
    C(pg_dump --snapshot)), so they describe exactly what was dumped.
  - A per-database lock in C(<backup_dir>/.locks) keeps backups, verifies, restores and retention of one database apart.
  - PostgreSQL 15's C(pg_dump) compresses only with gzip. With O(format=custom) or O(format=plain) and zstd or lz4,
    C(pg_dump) writes uncompressed and a host-side compressor using every core does the work, which is several times
    faster than gzip. With a PostgreSQL 16+ C(pg_dump) zstd and lz4 are native for custom and directory formats.
  - With O(tools_location=compose), C(pg_dump) runs in the database container and custom/plain output streams to the
    host over stdout. Directory format is written inside the container under C(/tmp) and copied out with
    C(docker compose cp), so the container needs room for one dump.
author:
  - stackops maintainers (@stackops)
options:
  database:
    description: Database to back up.
    type: str
    required: true
  format:
    description:
      - C(custom) is one file that C(pg_restore) can restore selectively and in parallel.
      - C(directory) dumps tables in parallel (O(jobs)); C(plain) is SQL for psql.
    type: str
    choices: [custom, directory, plain]
    default: custom
  compression:
    description: Compression method. See the description for where compression happens.
    type: str
    choices: [zstd, gzip, lz4, none]
    default: zstd
  compression_level:
    description: Compression level; defaults to 3 for zstd, 4 for gzip and 1 for lz4.
    type: int
  jobs:
    description: Parallel C(pg_dump) workers; only for O(format=directory).
    type: int
    default: 1
  content_checksums:
    description:
      - Also record a per-table checksum of the table content (an order-independent sum of row hashes),
        so M(stackops.runbooks.pg_backup_verify) can prove the restored content, not only the row counts, matches.
      - Reads every table a second time inside the dump snapshot.
    type: bool
    default: false
  include_globals:
    description:
      - Add C(globals.sql) from C(pg_dumpall --globals-only) (roles, tablespaces) to the set.
      - Role passwords are left out (C(--no-role-passwords)); keep them in your secret store.
    type: bool
    default: false
  group_id:
    description:
      - Id of the run this set belongs to, recorded as C(group) in the manifest. C(stackops backup --all-databases)
        gives every set of one run the same id, so M(stackops.runbooks.pg_backup_group_info) can find them together.
    type: str
  group_databases:
    description:
      - With O(group_id), every database the run backs up, recorded as C(group_databases) in the manifest, so a group
        that lacks the set of one of them (its backup failed) is known to be incomplete.
    type: list
    elements: str
    default: []
  include_files:
    description: Files on the managed host (compose files, env files) to copy into C(files/) of the set.
    type: list
    elements: path
    default: []
  include_volumes:
    description: Docker named volumes to archive into C(volumes/<name>.tar[.zst]) of the set.
    type: list
    elements: str
    default: []
  volume_helper_image:
    description:
      - Image with C(tar) used to read O(include_volumes) with C(docker run --rm).
      - Defaults to the image of O(compose_service).
    type: str
  include_compose_files:
    description:
      - Also copy the compose files found directly in O(project_dir) (C(compose.yaml), C(compose.yml),
        C(docker-compose.yaml), C(docker-compose.yml), C(compose.*.yaml), C(compose.*.yml)), sorted, before
        O(include_files).
    type: bool
    default: false
  free_space_factor:
    description:
      - Refuse to start unless the backup filesystem has this many times the expected backup size free. The expected
        size is the size of the newest backup set of O(database) in O(backup_dir), or the database size when there is
        none. Measured on the nearest existing parent when O(backup_dir) does not exist yet; also in check mode.
      - V(0) turns the pre-check off (the space is still measured and returned).
    type: float
    default: 0
  min_interval:
    description:
      - When a verified backup set of O(database) younger than this many seconds exists, do nothing and return
        RV(due=false) (idempotent scheduled runs). V(0) always backs up.
    type: int
    default: 0
  record_last_backup:
    description:
      - Write C(<backup_dir>/last_backup.json) (database, backup_id, last_backup_timestamp, size_bytes,
        duration_seconds, verified) after publishing the set, for monitoring that reads no manifests.
      - C(verified) is V(null) until M(stackops.runbooks.pg_backup_verify) verifies that set and updates it.
    type: bool
    default: false
  retention:
    description:
      - Apply this keep_last/keep_daily/keep_weekly/keep_monthly policy to the sets of O(database) right after
        publishing, under the same lock (what M(stackops.runbooks.pg_backup_retention) does, without a second
        module run). The newest verified set is always kept, so an older proven set survives until a newer one is
        verified. In check mode, the sets that would be deleted are listed.
      - Without it, no set is deleted.
    type: dict
    suboptions:
      keep_last: {description: 'As O(stackops.runbooks.pg_backup_retention#module:keep_last).', type: int, default: 7}
      keep_daily: {description: 'As O(stackops.runbooks.pg_backup_retention#module:keep_daily).', type: int, default: 7}
      keep_weekly: {description: 'As O(stackops.runbooks.pg_backup_retention#module:keep_weekly).', type: int, default: 4}
      keep_monthly: {description: 'As O(stackops.runbooks.pg_backup_retention#module:keep_monthly).', type: int, default: 3}
  backup_dir_mode:
    description:
      - Mode to enforce on O(backup_dir) (created or existing), for example C(0700).
      - Without it a directory this module creates gets mode C(0700) and an existing one is left as it is.
    type: raw
  verify:
    description:
      - Prove the set restores before publishing it, with the checks of M(stackops.runbooks.pg_backup_verify)
        (sha256 of every file, a trial restore into a scratch database that is always dropped, row counts and content
        checksums against the manifest). The set is published together with its C(verification.json), so no listing
        ever shows it before its verdict. A set that does not verify is still published, marked unverified, and the
        task fails.
      - A custom-format dump is restored while it is dumped, from the bytes written to its file (decompressed again
        for it), so the verification costs about the slower of the dump and the restore, not their sum. Other formats,
        and a dump the streamed restore does not handle, are restored from the written set after the dump.
    type: bool
    default: false
  verify_jobs:
    description: Connections that load rows and build indexes in the trial restore (O(verify)), as O(stackops.runbooks.pg_backup_verify#module:jobs).
    type: int
    default: 2
  metrics_file:
    description:
      - Write RV(metrics) to this file (mode 0644, atomically) for a node_exporter textfile collector, once the set
        is published (and, with O(verify), proven). Its directory must exist.
      - A failed backup leaves the file as it was, so it keeps saying when the last good backup was taken.
      - Not written in check mode.
    type: path
requirements:
  - psycopg (psycopg 3) on the managed host
extends_documentation_fragment:
  - stackops.runbooks.postgres
  - stackops.runbooks.postgres.tools
  - stackops.runbooks.postgres.backup_catalog
  - stackops.runbooks.attributes
  - stackops.runbooks.attributes.changes_state
  - stackops.runbooks.attributes.actiongroup_catalog_compose_db_service_postgresql
notes:
  - With O(verify) the module holds two more connections for the trial restore, and the scratch database needs room
    for one restored copy of the database on the server.
  - Check mode connects to the database and reports the backup that would be written; it writes nothing. The free
    space pre-check (O(free_space_factor)) runs for real in check mode too.
seealso:
  - module: stackops.runbooks.pg_backup_verify
  - module: stackops.runbooks.pg_backup_restore
'''

EXAMPLES = r'''
- name: Back up appdb with zstd
  stackops.runbooks.pg_backup:
    database: appdb
    backup_dir: /var/backups/stackops
    login_user: app
    login_password_file: /etc/stackops/db_password

- name: Back up appdb, prove it restores and publish its metrics for node_exporter
  stackops.runbooks.pg_backup:
    database: appdb
    backup_dir: /var/backups/stackops
    verify: true
    metrics_file: /var/lib/node_exporter/textfile/stackops_backup.prom

- name: Parallel directory-format dump from inside the compose service, with content checksums
  stackops.runbooks.pg_backup:
    database: appdb
    backup_dir: /var/backups/stackops
    format: directory
    compression: gzip
    jobs: 4
    content_checksums: true
    tools_location: compose
    project_dir: /srv/app
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
removed_stale_partials:
  description: C(.partial) directories of this database (exactly its name) left by killed backups and removed.
  returned: when the lock was taken
  type: list
  elements: str
backup_id:
  description: Id of the backup set (its directory name); the one that would be written in check mode or when not due.
  returned: always
  type: str
  sample: appdb-20260101T030000123Z
path:
  description: Directory of the backup set (in check mode, where it would be).
  returned: always
  type: str
manifest_path:
  description: Path of the manifest.
  returned: always
  type: str
size_bytes:
  description: Total size of the files in the set.
  returned: success
  type: int
database_size_bytes:
  description: Size of the database on the server (C(pg_database_size)); the expected order of magnitude in check mode.
  returned: when due
  type: int
duration_seconds:
  description: Wall-clock time of the backup.
  returned: success
  type: float
metrics:
  description:
    - The new set's Prometheus textfile (node_exporter textfile collector), with the verification's outcome when
      O(verify) is set (else not verified; M(stackops.runbooks.pg_backup_verify) returns it once it verifies the set).
  returned: when a backup was taken
  type: str
throughput_mib_per_second:
  description: Database size divided by duration.
  returned: success
  type: float
checksum:
  description: sha256 over the sorted C(sha256  path) lines of every file in the set.
  returned: success
  type: str
tables:
  description: Number of tables counted in the manifest.
  returned: when due
  type: int
manifest:
  description: The manifest written (in check mode, the options it would record).
  returned: when due
  type: dict
space:
  description:
    - Free space on the backup filesystem, measured before dumping (also in check mode).
    - C(backup_dir_exists), C(measured_path) (O(backup_dir) or its nearest existing parent), C(free_bytes),
      C(expected_size_bytes), C(needed_bytes) (O(free_space_factor) x the expected size).
  returned: when due
  type: dict
would_create_backup_dir:
  description: O(backup_dir) does not exist yet (in check mode, it would be created).
  returned: when due
  type: bool
retention:
  description:
    - With O(retention), what the policy did - C(deleted) (ids; in check mode, that would be deleted), C(kept)
      (id to the rules that kept it), C(freed_bytes), C(busy) (always empty, the lock is held).
  returned: when O(retention) is set and a backup was due
  type: dict
due:
  description: V(false) when nothing was done because a verified backup younger than O(min_interval) exists.
  returned: always
  type: bool
skipped_reason:
  description: Why nothing was done (V(null) when a backup was due).
  returned: always
  type: str
latest_verified:
  description: The newest verified set of O(database) before this run (C(id), C(age_seconds), C(path)), or V(null).
  returned: always
  type: dict
verified:
  description: With O(verify), whether every check passed (also recorded in the set's C(verification.json)).
  returned: when O(verify) is set and a set was written
  type: bool
verification:
  description:
    - With O(verify), what M(stackops.runbooks.pg_backup_verify) returns - C(verified), C(checksums_ok), C(differences),
      C(scratch_database), C(content_compared), C(restore_method), C(phase_seconds) of the trial restore,
      C(duration_seconds) (from the start of the trial restore, which overlaps the dump) - and C(during_backup)
      (V(true) when it restored the dump while it was written).
  returned: when O(verify) is set and a set was written
  type: dict
metrics_file_changed:
  description: Whether O(metrics_file) was written with new content.
  returned: when O(metrics_file) is set and a backup was taken
  type: bool
summary:
  description:
    - The run in one line - the set, its size, time, verification and what retention deleted (in check mode, what
      would be done), or why nothing was done.
  returned: success
  type: str
  sample: "backup appdb-20260101T030000123Z of appdb: 1048576 bytes in 2.5s, verified=True, retention deleted 0 old sets"
phase_seconds:
  description:
    - Where the time went - C(dump) (pg_dump to the fsynced file), C(count-wait) (row counts still running after
      it), C(extras) (globals, files, volumes), C(publish) (fsync of the set and the rename), C(retention), C(total);
      with O(verify) also C(trial) (the trial restore from its start), C(overlap) (of it with the dump),
      C(trial-pre-data), C(trial-data), C(trial-post-data), C(trial-compare) (row counts of the scratch database) and
      C(checksums) (the written files read back).
  returned: when a set was written
  type: dict
'''

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.stackops.runbooks.plugins.module_utils.backup_catalog import common_module_spec
from ansible_collections.stackops.runbooks.plugins.module_utils.backup_retention import retention_policy_spec
from ansible_collections.stackops.runbooks.plugins.module_utils.backup_take import back_up
from ansible_collections.stackops.runbooks.plugins.module_utils.pg import prepare


def main():
    spec = common_module_spec()
    spec.update(
        database=dict(type='str', required=True),
        format=dict(type='str', choices=['custom', 'directory', 'plain'], default='custom'),
        compression=dict(type='str', choices=['zstd', 'gzip', 'lz4', 'none'], default='zstd'),
        compression_level=dict(type='int'),
        jobs=dict(type='int', default=1),
        content_checksums=dict(type='bool', default=False),
        include_globals=dict(type='bool', default=False),
        group_id=dict(type='str'),
        group_databases=dict(type='list', elements='str', default=[]),
        include_files=dict(type='list', elements='path', default=[]),
        include_volumes=dict(type='list', elements='str', default=[]),
        volume_helper_image=dict(type='str'),
        include_compose_files=dict(type='bool', default=False),
        free_space_factor=dict(type='float', default=0),
        min_interval=dict(type='int', default=0),
        record_last_backup=dict(type='bool', default=False),
        backup_dir_mode=dict(type='raw'),
        retention=dict(type='dict', options=retention_policy_spec()),
        verify=dict(type='bool', default=False),
        verify_jobs=dict(type='int', default=2),
        metrics_file=dict(type='path'),
    )
    module = AnsibleModule(argument_spec=spec, supports_check_mode=True)
    prepare(module)
    result, failure = back_up(module)
    if failure:
        module.fail_json(**dict(result, msg=failure))
    module.exit_json(**result)


if __name__ == '__main__':
    main()
