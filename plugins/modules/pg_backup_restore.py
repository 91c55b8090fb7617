#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, stackops maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function
__metaclass__ = type

DOCUMENTATION = r'''
---
module: pg_backup_restore
short_description: Restore a PostgreSQL backup set into a new database or swap it in for an existing one
version_added: 0.1.0
description:
  - Refuses to start unless every file of the set matches its manifest (size and sha256), checked under the lock and
    before anything is created. Check mode hashes every file.
  - Always restores into a temporary database beside the target first, then compares row counts (and content
    checksums when present) with the manifest.
  - A whole custom-format dump is B(streamed). The decompressor feeds C(pg_restore), which creates the schema, then
    writes the rows as its SQL script. The rows of every C(COPY) block are spread over O(jobs) connections, so
    even one big table loads on every core. Then O(jobs) C(pg_restore) processes build the indexes and primary and
    unique constraints side by side, and one adds the foreign keys and the rest of post-data. No decompressed copy
    is written, and nothing is copied into a container. If the dump holds something the stream does not handle,
    the module warns and starts over the classic way.
  - Directory-format dumps and selective restores (O(tables), O(schemas)) restore the classic way, from a file path
    (never stdin, so O(jobs) works). An externally compressed dump is decompressed into O(work_dir) first, and
    hashed while it is decompressed, so the bytes restored are the bytes checked. Plain SQL goes through
    C(psql -v ON_ERROR_STOP=1).
  - The restore sessions run with C(synchronous_commit=off) (through C(PGOPTIONS)). Nothing uses the temporary
    database until the rename or swap, whose own synchronous commit flushes all earlier WAL.
  - Only then is the result put in place. A new target is created by renaming the temporary database. An existing
    target (O(replace=true), O(confirm=true)) is swapped in one transaction - connections to it are blocked and
    terminated, it is renamed away and the temporary database takes its name - and the old one is dropped or kept
    (O(keep_old)). Any failure before the swap leaves the original untouched, and the error says so.
  - An existing target that is B(empty), as the databases a freshly initialised server's image creates are, is
    swapped without O(replace) and O(confirm) (RV(action=replace_empty)). Empty means no object pg_dump would dump
    (schemas, tables, functions, types, large objects, rows in an extension's configuration tables), no database
    setting, privilege or comment beyond initdb's, and no other client session. It is checked when the target is
    inspected and again with connections to it blocked, right before the swap; a database that got content or a
    session meanwhile is left untouched and the restore fails.
  - Holds the per-database locks of the backed-up database and of the target, so no backup runs meanwhile.
  - A set encrypted at rest (M(stackops.runbooks.pg_backup_encrypt)) needs O(age_identity_file). Its key is checked
    against the set's recipients before the target is inspected (also in check mode), then the ciphertext is checked,
    decrypted into O(work_dir) and the plaintext checked before anything is created.
author:
  - stackops maintainers (@stackops)
options:
  backup_id:
    description: Backup set to restore. Without it, the newest (verified, see O(require_verified)) set of O(database).
    type: str
  database:
    description: Database whose newest backup set is restored when O(backup_id) is not given.
    type: str
  target_database:
    description: Database to restore into; defaults to the database the set was taken from.
    type: str
  replace:
    description: Replace O(target_database) if it exists. Without it an existing target makes the task fail.
    type: bool
    default: false
  confirm:
    description: Must be V(true) to replace an existing database, because its current content is dropped.
    type: bool
    default: false
  keep_old:
    description: Keep the replaced database under the name returned in RV(old_database) instead of dropping it.
    type: bool
    default: false
  require_verified:
    description:
      - Only restore sets that M(stackops.runbooks.pg_backup_verify) has verified; when choosing the newest set, choose
        the newest verified one.
    type: bool
    default: true
  tables:
    description:
      - Restore only these tables (C(schema.table) or C(table) for public) - their definitions, defaults, sequences,
        comments and data, like C(pg_restore -t); indexes and constraints come only with O(schemas).
        Extensions are always restored.
      - Only into a new database; custom and directory formats only.
    type: list
    elements: str
    default: []
  schemas:
    description: Restore only these schemas with everything in them. Only into a new database.
    type: list
    elements: str
    default: []
  compare_content:
    description: Compare per-table content checksums too, when the manifest has them.
    type: bool
    default: true
  properties_from:
    description:
      - Where the owner, settings, privileges, connection limit, comment, encoding and locale of a replaced database
        come from. V(target) keeps those of the database being replaced (the same database, its content set back).
        V(backup) takes those the backup recorded, as a disaster recovery wants; an encoding or locale this server
        cannot create falls back to the replaced database's, with a warning.
      - A new or an empty target always gets the backup's.
    type: str
    choices: [target, backup]
    default: target
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
  - stackops.runbooks.caller
notes:
  - Check mode verifies the checksums and reports exactly which database would be created, replaced or dropped,
    with its size and open sessions; it changes nothing.
  - Database-level settings (C(ALTER DATABASE ... SET)) of a replaced database are carried over to the new one, unless
    O(properties_from=backup) or the target is empty.
seealso:
  - module: stackops.runbooks.pg_backup
  - module: stackops.runbooks.pg_backup_verify
'''

EXAMPLES = r'''
- name: Replace appdb with its newest verified backup
  stackops.runbooks.pg_backup_restore:
    database: appdb
    backup_dir: /var/backups/stackops
    replace: true
    confirm: true
    login_user: app
    login_password_file: /etc/stackops/db_password

- name: Restore two tables of a given backup into a new database for inspection
  stackops.runbooks.pg_backup_restore:
    backup_id: appdb-20260101T030000123Z
    backup_dir: /var/backups/stackops
    target_database: appdb_inspect
    tables: [public.orders, public.customers]
'''

RETURN = r'''
cleaned_up:
  description:
    - What killed runs on this database had left and this run removed under the lock, one line each (scratch
      databases dropped, work directories and C(*.tmp-<pid>) files removed, connections to a database blocked by a
      killed swap allowed again, stand-in roles of a killed restore dropped). Empty when there was nothing.
  returned: when the lock was taken
  type: list
  elements: str
skipped_roles:
  description:
    - Roles named by the database's owner, ACL or settings, or by privileges inside the dump (GRANTs,
      default privileges), that this server does not have; what the backup gives them is left out of the copy.
    - Privileges inside the dump to such a role are restored onto a stand-in role (NOLOGIN), taken back and the
      stand-in dropped before the restore ends, so a single database restores onto a server without the roles.
  returned: success
  type: list
  elements: str
backup_id:
  description: The set restored.
  returned: when a set was found
  type: str
target_database:
  description: The database that now holds the restored data.
  returned: when a set was found
  type: str
action:
  description:
    - C(create) (new database), C(replace) (swap with an existing one; needs O(replace) and O(confirm)) or
      C(replace_empty) (swap with an existing empty one, as a fresh server's image creates; needs neither).
  returned: when a set was found
  type: str
target_content:
  description: Why an existing target is not empty (objects, settings, sessions); empty for an empty target.
  returned: when the target exists
  type: list
  elements: str
old_database:
  description: Name the replaced database was kept under (O(keep_old)), or V(null) when dropped or nothing was replaced.
  returned: success
  type: str
would_drop:
  description: In check mode and on refusal, the database that would be replaced, with size, tables and sessions.
  returned: when replacing
  type: dict
tables:
  description: Number of tables compared with the manifest after restoring (in check mode, that would be compared).
  returned: success
  type: int
rows:
  description: Rows in those tables, as counted after restoring and matched against the manifest.
  returned: success
  type: int
content_compared:
  description: Whether content checksums were compared too.
  returned: success
  type: bool
restore_method:
  description: How the dump was restored - C(stream), C(pg_restore) (from a file) or C(psql) (plain SQL).
  returned: success
  type: str
phase_seconds:
  description:
    - Where the time went, in seconds. A streamed restore has C(checksums) (hashing the set), C(toc) (reading the
      table of contents), C(pre-data) (the schema), C(data) (loading rows) and C(post-data) (indexes and
      constraints). Every restore has C(compare) (row counts against the manifest; in a streamed restore it runs
      beside C(post-data)) and C(swap) (the rename or swap).
  returned: success
  type: dict
duration_seconds:
  description: Time the restore took.
  returned: always
  type: float
'''

import os
import time

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.stackops.runbooks.plugins.module_utils.backup_catalog import (
    check_files, common_module_spec, find_set, load_verification)
from ansible_collections.stackops.runbooks.plugins.module_utils.backup_lock import LockSet
from ansible_collections.stackops.runbooks.plugins.module_utils.backup_set import (
    BackupError, ensure_backup_dir, scratch_name)
from ansible_collections.stackops.runbooks.plugins.module_utils.caller_words import option_variables_spec, setting, settings
from ansible_collections.stackops.runbooks.plugins.module_utils.encryption import require_identity
from ansible_collections.stackops.runbooks.plugins.module_utils.pg import connect, connect_server, describe_target, prepare, sql
from ansible_collections.stackops.runbooks.plugins.module_utils.fault import fault_point
from ansible_collections.stackops.runbooks.plugins.module_utils.pg_database import (
    admin_db, apply_database_properties, create_database, database_content, database_exists, database_info,
    database_properties, drop_database, recreate_database, role_exists)
from ansible_collections.stackops.runbooks.plugins.module_utils.restore_selection import expand_selection, parse_table_name
from ansible_collections.stackops.runbooks.plugins.module_utils.restore_session import (
    RestoreSession, check_restored, expected_tables, restore_session_spec)
from ansible_collections.stackops.runbooks.plugins.module_utils.restore_stream import timed
from ansible_collections.stackops.runbooks.plugins.module_utils.run_journal import (
    ALLOW_CONNECTIONS, DROP_DATABASE, RunJournal, clean_up_after_killed_runs)


def describe_existing(params, name):
    """What replacing ``name`` would destroy, for check mode and for refusals."""
    with connect_server(params, 'stackops-restore', avoid=(name,)) as conn:
        info = database_info(conn, name)
        sessions = conn.execute('SELECT count(*) FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()',
                                (name,)).fetchone()[0]
    return dict(database=name, size_bytes=info['size_bytes'], owner=info['owner'], sessions=int(sessions))


def existing_content(params, name):
    """database_content() of ``name``; a database this check cannot connect to is not known to be empty."""
    try:
        with connect(params, dbname=name, application_name='stackops-restore') as conn:
            return database_content(conn)
    except Exception as exc:  # pylint: disable=broad-except
        return ['cannot connect to it to tell whether it is empty (%s)' % str(exc).strip()]


def swap(module, params, conn, target, temp, keep_old, journal, empty_only=False):
    """Block and end sessions on ``target``, then rename it away and ``temp`` into place in one transaction.

    The block is journaled first, so a run killed before the renames commit leaves the next run an entry that
    allows connections again; the renames and (with keep_old) allowing connections to the old copy commit together.
    With ``empty_only`` (a target replaced without consent because it was empty), no session is ended: the target
    must still be empty once connections to it are blocked, checked over a connection opened before the block, so
    nothing can have been written between the check and the renames.
    """
    old = scratch_name(target, 'old')
    block = sql.SQL('ALTER DATABASE {} WITH ALLOW_CONNECTIONS {}')
    if not keep_old:
        journal.add(DROP_DATABASE, old)
    journal.add(ALLOW_CONNECTIONS, target)
    witness = connect(params, dbname=target, application_name='stackops-restore') if empty_only else None
    try:
        conn.execute(block.format(sql.Identifier(target), sql.SQL('false')))
    except Exception:
        if witness is not None:
            witness.close()
        raise
    try:
        if witness is not None:
            with witness:
                content = database_content(witness)
            if content:
                raise BackupError('database %s is no longer empty (%s); it was left as it was: stop what uses it, or '
                                  'replace it with %s' % (target, '; '.join(content), settings(
                                      params, ('replace', True), ('confirm', True))))
        for attempt in range(50):
            if not empty_only:
                conn.execute('SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s '
                             'AND pid <> pg_backend_pid()', (target,))
            try:
                with conn.transaction():
                    fault_point('swap')
                    conn.execute(sql.SQL('ALTER DATABASE {} RENAME TO {}').format(sql.Identifier(target), sql.Identifier(old)))
                    conn.execute(sql.SQL('ALTER DATABASE {} RENAME TO {}').format(sql.Identifier(temp), sql.Identifier(target)))
                    if keep_old:
                        conn.execute(block.format(sql.Identifier(old), sql.SQL('true')))
                break
            except Exception as exc:
                # Terminated backends take a moment to exit; anything else is a real error.
                if 'being accessed by other users' not in str(exc) or attempt == 49:
                    raise
                time.sleep(0.2)
    except Exception:
        conn.execute(block.format(sql.Identifier(target), sql.SQL('true')))
        journal.done(ALLOW_CONNECTIONS, target)
        journal.done(DROP_DATABASE, old)
        raise
    fault_point('swapped')
    journal.done(ALLOW_CONNECTIONS, target)
    journal.done(DROP_DATABASE, temp)
    if keep_old:
        return old
    try:
        drop_database(conn, old)
    except Exception as exc:
        module.warn('restored %s, but dropping the replaced database %s failed: %s; drop it by hand' % (target, old, exc))
        return old
    journal.done(DROP_DATABASE, old)
    return None


def main():
    spec = common_module_spec()
    spec.update(restore_session_spec())
    spec.update(
        backup_id=dict(type='str'),
        database=dict(type='str'),
        target_database=dict(type='str'),
        replace=dict(type='bool', default=False),
        confirm=dict(type='bool', default=False),
        keep_old=dict(type='bool', default=False),
        require_verified=dict(type='bool', default=True),
        tables=dict(type='list', elements='str', default=[]),
        schemas=dict(type='list', elements='str', default=[]),
        compare_content=dict(type='bool', default=True),
        properties_from=dict(type='str', choices=['target', 'backup'], default='target'),
    )
    spec.update(option_variables_spec())
    module = AnsibleModule(argument_spec=spec, required_one_of=[('backup_id', 'database')], supports_check_mode=True)
    prepare(module)
    params = module.params
    clock = time.monotonic()
    result = dict(changed=False)
    stage = 'choosing the backup'
    try:
        tables = [parse_table_name(name) for name in params['tables']]
        schemas = list(params['schemas'])
        set_dir, manifest = find_set(params['backup_dir'], params['backup_id'], params['database'],
                                     verified_only=params['require_verified'] and not params['backup_id'])
        if params['require_verified'] and not (load_verification(set_dir) or {}).get('verified'):
            raise BackupError('backup %s has not been verified; verify it with stackops.runbooks.pg_backup_verify or set '
                              '%s to restore it anyway' % (manifest['id'], setting(params, 'require_verified', False)))
        if manifest.get('encryption'):
            # Before the target is inspected, created or dropped, and before the role stops any writer (it runs
            # this module in check mode first).
            stage = 'checking the decryption key'
            require_identity(module, manifest, params['age_identity_file'])
        tables = expand_selection(manifest, tables)
        target = params['target_database'] or manifest['database']
        result.update(backup_id=manifest['id'], target_database=target)
        stage = 'inspecting the target'
        with connect_server(params, 'stackops-restore', avoid=(target,)) as conn:
            exists = database_exists(conn, target)
        content = existing_content(params, target) if exists else []
        result['action'] = 'create' if not exists else 'replace' if content else 'replace_empty'
        if exists:
            result['target_content'] = content
            result['would_drop'] = describe_existing(params, target)
            if content and not params['replace']:
                raise BackupError('database %s already exists on %s and is not empty (%s); set %s to swap it for the '
                                  'backup, or restore elsewhere with %s' % (
                                      target, describe_target(params), '; '.join(content),
                                      settings(params, ('replace', True), ('confirm', True)),
                                      setting(params, 'target_database', 'NAME')))
            if tables or schemas:
                raise BackupError('a selective restore (tables/schemas) cannot replace %s: restore into a new '
                                  'target_database and copy the tables from there' % target)
        stage = 'checking the backup files'
        # Check mode hashes every file now; a real restore compares sizes here and hashes under the lock, while the
        # dump is read for restoring (RestoreSession.stage_checked), so the bytes restored are the bytes checked.
        problems = check_files(set_dir, manifest, sizes_only=not module.check_mode)
        if problems:
            raise BackupError('backup %s does not match its manifest (%s); refusing to restore, %s was not touched. Use '
                              'another backup' % (manifest['id'], '; '.join(problems[:5]), target))
        if module.check_mode:
            expected = expected_tables(manifest, tables, schemas)
            result.update(tables=len(expected), rows=sum(t['rows'] for t in expected))
            result.update(changed=True, msg='would %s database %s on %s from backup %s%s' % (
                result['action'].replace('_', ' '), target, describe_target(params), manifest['id'],
                ' (dropping its current content: %(size_bytes)d bytes, %(sessions)d open sessions)' % result['would_drop']
                if content else ''))
            result['duration_seconds'] = round(time.monotonic() - clock, 3)
            module.exit_json(**result)
        if content and not params['confirm']:
            raise BackupError('replacing database %s (%d bytes, %d open sessions) drops its current content; set %s to '
                              'go ahead' % (target, result['would_drop']['size_bytes'], result['would_drop']['sessions'],
                                            setting(params, 'confirm', True)))
        stage = 'restoring'
        # A decompressed copy of the dump and the list files hold the rows too: readable by the backup owner only.
        os.umask(0o077)
        ensure_backup_dir(params['backup_dir'])
        with LockSet(params['backup_dir'], [manifest['database'], target], 'restore', params['lock_timeout']):
            result['cleaned_up'] = clean_up_after_killed_runs(params, [manifest['database'], target])
            result.update(restore(module, params, set_dir, manifest, target, exists, tables, schemas,
                                  empty=exists and not content))
    except BackupError as exc:
        result['duration_seconds'] = round(time.monotonic() - clock, 3)
        module.fail_json(msg='restore failed while %s: %s' % (stage, exc), **result)
    except Exception as exc:
        result['duration_seconds'] = round(time.monotonic() - clock, 3)
        module.fail_json(msg='restore failed on %s: %s' % (describe_target(params), exc), **result)
    result.update(changed=True, duration_seconds=round(time.monotonic() - clock, 3))
    module.exit_json(**result)


def from_backup(params, manifest, exists, empty):
    """Whether the restored copy gets the properties, encoding and locale the backup recorded rather than those of
    the database it replaces: for a new target, an empty one (a fresh server's image made it, its properties are the
    image's defaults) and with properties_from=backup (a disaster recovery). Sets made before properties were
    recorded keep the replaced database's."""
    return not exists or ((empty or params['properties_from'] == 'backup') and bool(manifest.get('database_properties')))


def create_temp_database(module, conn, temp, target, manifest, exists, backup_first):
    """Create ``temp`` like the backup's database (``backup_first``) or like ``target``; returns the ``like`` used.
    An encoding or locale this server cannot create falls back to the replaced database's, with a warning."""
    like = dict(manifest['database_info']) if backup_first else database_info(conn, target)
    if not role_exists(conn, like.get('owner')):
        like['owner'] = None
    try:
        create_database(conn, temp, like=like)
    except Exception as exc:
        if not (exists and backup_first):
            raise
        module.warn('cannot create %s with the encoding and locale the backup recorded (%s, %s/%s): %s; it gets those '
                    'of the database it replaces' % (target, like.get('encoding'), like.get('collate'),
                                                     like.get('ctype'), str(exc).strip()))
        like = database_info(conn, target)
        if not role_exists(conn, like.get('owner')):
            like['owner'] = None
        create_database(conn, temp, like=like)
    return like


def restore(module, params, set_dir, manifest, target, exists, tables, schemas, empty=False):
    temp = scratch_name(target, 'restore')
    admin = admin_db(params, target, temp)
    journal = RunJournal(params['backup_dir'], target)
    session = RestoreSession(module, params, set_dir, manifest, params['work_dir'], selective=bool(tables or schemas),
                             journal=journal)
    created = swapped = False
    untouched = ('the original database %s is untouched' % target) if exists else ('%s was not created' % target)
    skipped_roles = []
    try:
        # Checked under the lock (a retention run may have raced us) and before anything is created.
        try:
            problems = session.stage_checked()
        except BackupError as exc:
            raise BackupError('staging %s for the restore: %s; %s' % (manifest['id'], exc, untouched))
        if problems:
            raise BackupError('backup %s does not match its manifest (%s); refusing to restore, %s was not touched. Use '
                              'another backup' % (manifest['id'], '; '.join(problems[:5]), target))
        try:
            backup_first = from_backup(params, manifest, exists, empty)
            with connect(params, dbname=admin, application_name='stackops-restore') as conn:
                properties = manifest.get('database_properties') if backup_first else database_properties(conn, target)
                journal.add(DROP_DATABASE, temp)
                like = create_temp_database(module, conn, temp, target, manifest, exists, backup_first)
                created = True
            fault_point('restore-load')
            # The row counts run beside the index builds of a streamed restore, once the rows are in.
            session.restore(temp, jobs=params['jobs'], tables=tables, schemas=schemas, no_owner=params['no_owner'],
                            recreate=lambda: recreate_database(params, admin, temp, like, 'stackops-restore'),
                            compare=lambda: check_restored(params, temp, manifest, tables, schemas,
                                                           content=params['compare_content']))
            differences, content = session.compared
            if differences:
                raise BackupError('the restored copy does not match the manifest: %s' % '; '.join(differences[:5]))
            if properties:
                # After the rows: a setting such as default_transaction_read_only must not apply to the restore.
                with connect(params, dbname=admin, application_name='stackops-restore') as conn:
                    skipped_roles = apply_database_properties(conn, temp, properties)
            skipped_roles = sorted(set(skipped_roles) | set(session.skipped_roles))
        except Exception as exc:
            raise BackupError('%s into temporary database %s: %s; %s' % (
                'restoring %s' % manifest['id'], temp, exc, untouched))
        with timed(session.timings, 'swap'), connect(params, dbname=admin, application_name='stackops-restore') as conn:
            if exists:
                try:
                    old = swap(module, params, conn, target, temp, params['keep_old'], journal, empty_only=empty)
                except Exception as exc:
                    raise BackupError('swapping %s in for %s: %s; %s' % (temp, target, exc, untouched))
            else:
                conn.execute(sql.SQL('ALTER DATABASE {} RENAME TO {}').format(sql.Identifier(temp), sql.Identifier(target)))
                journal.done(DROP_DATABASE, temp)
                old = None
            swapped = True
    finally:
        session.cleanup()
        if created and not swapped:
            with connect(params, dbname=admin, application_name='stackops-restore') as conn:
                drop_database(conn, temp)
            journal.done(DROP_DATABASE, temp)
    if skipped_roles:
        module.warn('restored %s, but roles %s do not exist on %s: the privileges the backup grants them (and their '
                    'ownership and settings of the database) were left out; create them (globals.sql) and restore '
                    'again if they are needed' % (
                        target, ', '.join(skipped_roles), describe_target(params)))
    expected = expected_tables(manifest, tables, schemas)
    msg = '%s database %s from backup %s%s' % (
        'replaced empty' if empty else 'replaced' if exists else 'created', target, manifest['id'],
        ' (old copy kept as %s)' % old if old else '')
    return dict(old_database=old, tables=len(expected), rows=sum(t['rows'] for t in expected), content_compared=content,
                restore_method=session.method, phase_seconds=session.timings, skipped_roles=skipped_roles,
                msg=msg)


if __name__ == '__main__':
    main()
