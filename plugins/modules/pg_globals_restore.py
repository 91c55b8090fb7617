#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, stackops maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function
__metaclass__ = type

DOCUMENTATION = r'''
---
module: pg_globals_restore
short_description: Replay the roles, memberships and tablespaces of a backup set onto a server
version_added: 0.2.0
description:
  - Runs the C(globals.sql) of a backup set (written by M(stackops.runbooks.pg_backup) with
    O(stackops.runbooks.pg_backup#module:include_globals), from C(pg_dumpall --globals-only --no-role-passwords))
    with C(psql) against the server, before its databases are restored, so their owners and grantees exist.
  - The file is checked against the sha256 in the set's manifest first.
  - Roles and tablespaces that exist already are not created again (their C(CREATE) is left out); their attributes,
    settings and memberships are set as the file says. Passwords are never in the file; set them afterwards.
  - C(changed) compares the server's roles, memberships, role settings and tablespaces before and after, so a
    second run reports no change.
author:
  - stackops maintainers (@stackops)
options:
  backup_id:
    description: The set whose C(globals.sql) to replay (see M(stackops.runbooks.pg_backup_group_info)).
    type: str
    required: true
  age_identity_file:
    description:
      - age identity (private key) file that decrypts the C(globals.sql) of a set encrypted at rest
        (M(stackops.runbooks.pg_backup_encrypt)); the ciphertext is checked before, the plaintext after.
    type: path
requirements:
  - psycopg >= 3 on the managed host
extends_documentation_fragment:
  - stackops.runbooks.postgres
  - stackops.runbooks.postgres.tools
  - stackops.runbooks.postgres.backup_catalog
  - stackops.runbooks.attributes
  - stackops.runbooks.attributes.changes_state
  - stackops.runbooks.attributes.actiongroup_catalog_compose_db_service_postgresql
notes:
  - Check mode reads the file and the server and reports the roles and tablespaces that would be created.
  - A tablespace's directory must exist on the new server, owned by the server's user, or its C(CREATE) fails.
seealso:
  - module: stackops.runbooks.pg_backup_group_info
  - module: stackops.runbooks.pg_backup_restore
'''

EXAMPLES = r'''
- name: Roles and tablespaces first
  stackops.runbooks.pg_globals_restore:
    backup_dir: /var/backups/stackops
    backup_id: appdb-20260101T030000123Z
'''

RETURN = r'''
created_roles:
  description: Roles the file created (in check mode, would create).
  returned: always
  type: list
  elements: str
existing_roles:
  description: Roles of the file that existed already; only their attributes and memberships were applied.
  returned: always
  type: list
  elements: str
created_tablespaces:
  description: Tablespaces the file created (in check mode, would create).
  returned: always
  type: list
  elements: str
existing_tablespaces:
  description: Tablespaces of the file that existed already.
  returned: always
  type: list
  elements: str
'''

import os
import re

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.stackops.runbooks.plugins.module_utils.backup_catalog import (
    common_module_spec, find_set, plaintext_files)
from ansible_collections.stackops.runbooks.plugins.module_utils.backup_set import BackupError, sha256_file
from ansible_collections.stackops.runbooks.plugins.module_utils.encryption import read_decrypted
from ansible_collections.stackops.runbooks.plugins.module_utils.pipeline import describe_rc
from ansible_collections.stackops.runbooks.plugins.module_utils.pg import (
    PgTools, connect_server, describe_target, from_sql_ascii, prepare)

GLOBALS = 'globals.sql'
# pg_dumpall writes one CREATE per line: "CREATE ROLE name;" and "CREATE TABLESPACE name OWNER ... LOCATION '...';".
IDENT = br'("(?:[^"]|"")+"|[^\s";]+)'
CREATE_ROLE = re.compile(br'^CREATE ROLE ' + IDENT + br';$')
CREATE_TABLESPACE = re.compile(br'^CREATE TABLESPACE ' + IDENT + br' ')

STATE_QUERIES = (
    "SELECT rolname, rolsuper, rolinherit, rolcreaterole, rolcreatedb, rolcanlogin, rolreplication, rolbypassrls, "
    "rolconnlimit, rolvaliduntil::text FROM pg_roles WHERE rolname NOT LIKE 'pg\\_%' ORDER BY 1",
    "SELECT r.rolname, m.rolname, a.admin_option FROM pg_auth_members a JOIN pg_roles r ON r.oid = a.roleid "
    "JOIN pg_roles m ON m.oid = a.member ORDER BY 1, 2",
    "SELECT coalesce(r.rolname, ''), s.setconfig FROM pg_db_role_setting s LEFT JOIN pg_roles r ON r.oid = s.setrole "
    "WHERE s.setdatabase = 0 ORDER BY 1",
    "SELECT t.spcname, r.rolname, pg_tablespace_location(t.oid), t.spcoptions FROM pg_tablespace t "
    "JOIN pg_roles r ON r.oid = t.spcowner ORDER BY 1",
)


def unquote(ident):
    if ident.startswith(b'"'):
        return from_sql_ascii(ident[1:-1].replace(b'""', b'"'))
    return from_sql_ascii(ident)


def server_state(params):
    """The server's globals, and a database that exists to replay them from (a fresh server lacks the app's)."""
    with connect_server(params, application_name='stackops-globals-restore') as conn:
        return [conn.execute(query).fetchall() for query in STATE_QUERIES], conn.info.dbname


def plan_script(script, roles, tablespaces):
    """The script without the CREATEs of roles and tablespaces that exist, and what it will create."""
    kept, plan = [], dict(created_roles=[], existing_roles=[], created_tablespaces=[], existing_tablespaces=[])
    for line in script.split(b'\n'):
        for pattern, existing, kind in ((CREATE_ROLE, roles, 'roles'), (CREATE_TABLESPACE, tablespaces, 'tablespaces')):
            match = pattern.match(line)
            if match:
                name = unquote(match.group(1))
                if name in existing:
                    plan['existing_' + kind].append(name)
                    line = b'-- exists already: ' + line
                else:
                    plan['created_' + kind].append(name)
                break
        kept.append(line)
    return b'\n'.join(kept), plan


def main():
    spec = common_module_spec()
    spec.update(backup_id=dict(type='str', required=True), age_identity_file=dict(type='path'))
    module = AnsibleModule(argument_spec=spec, supports_check_mode=True)
    prepare(module)
    params = module.params
    target = describe_target(params)
    try:
        set_dir, manifest = find_set(params['backup_dir'], backup_id=params['backup_id'])
        expected = plaintext_files(manifest).get(GLOBALS)
        path = os.path.join(set_dir, GLOBALS)
        if not expected:
            raise BackupError('backup %s holds no %s; take it with include_globals (stackops backup --all-databases '
                              'does) or restore the roles by hand' % (params['backup_id'], GLOBALS))
        if manifest.get('encryption'):
            script = read_decrypted(module, set_dir, manifest, GLOBALS, params['age_identity_file'])
        elif not os.path.isfile(path) or sha256_file(path) != expected['sha256']:
            raise BackupError('%s does not match the sha256 in its manifest; the set is damaged, use another one' % path)
        else:
            with open(path, 'rb') as handle:
                script = handle.read()
        before, dbname = server_state(params)
        roles = set(row[0] for row in before[0])
        tablespaces = set(row[0] for row in before[3])
        script, plan = plan_script(script, roles, tablespaces)
        result = dict(changed=bool(plan['created_roles'] or plan['created_tablespaces']), backup_id=params['backup_id'],
                      **plan)
        if module.check_mode:
            module.exit_json(msg='would replay %s of %s on %s: create roles %s, tablespaces %s' % (
                GLOBALS, params['backup_id'], target, plan['created_roles'] or 'none',
                plan['created_tablespaces'] or 'none'), **result)
        tools = PgTools(module)
        argv = tools.argv('psql', tools.connection_args(dbname) + ['-X', '-q', '-v', 'ON_ERROR_STOP=1', '-f', '-'])
        rc, out, err = module.run_command(argv, data=script, binary_data=True, environ_update=tools.environ())
        if rc != 0:
            raise BackupError('psql replaying %s of %s on %s failed (%s): %s; statements before the failing one were '
                              'applied, fix the cause (a missing tablespace directory?) and run again, existing roles '
                              'and tablespaces are skipped' % (GLOBALS, params['backup_id'], target, describe_rc(rc),
                                                               (err or out).strip()[-1500:]))
        result['changed'] = server_state(params)[0] != before
    except BackupError as exc:
        module.fail_json(msg=str(exc))
    except Exception as exc:  # pylint: disable=broad-except
        module.fail_json(msg='replaying the globals of %s on %s failed: %s' % (params['backup_id'], target, exc))
    module.exit_json(msg='replayed %s of %s on %s: created roles %s, tablespaces %s' % (
        GLOBALS, params['backup_id'], target, plan['created_roles'] or 'none', plan['created_tablespaces'] or 'none'),
        **result)


if __name__ == '__main__':
    main()
