# -*- coding: utf-8 -*-
# Copyright: (c) 2026, stackops maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Roles a dump's privileges name that the target server lacks.

A database dump carries its GRANTs (and ALTER DEFAULT PRIVILEGES, and the SET SESSION AUTHORIZATION of a grantor)
but not the roles they name: those live in globals. pg_restore --exit-on-error stops at the first GRANT to a role the
server lacks, so a single database restored onto a fresh server fails on a grant it does not need. The restore gives
each such role a stand-in for its duration (NOLOGIN, marked by a comment), then takes back everything the stand-in
was given in the restored database and drops it: the copy has every privilege of the backup except those of the
missing roles, which the caller reports, as it does for the database's own owner, ACL and settings.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import re

from ansible_collections.stackops.runbooks.plugins.module_utils.pg import connect, sql

STAND_IN_COMMENT = 'stackops restore stand-in for a role the backup names; dropped when the restore ends'
# pg_restore -l: "<id>; <catalog oid> <oid> ACL ..." and "... DEFAULT ACL ...".
ACL_ENTRY = re.compile(r'^\d+; \d+ \d+ (DEFAULT )?ACL ')
IDENT = r'(?:"(?:[^"]|"")+"|[^\s";,]+)'
# pg_dump writes one grantee per statement, at its end; a grantor that is not the object's owner is named by a SET
# SESSION AUTHORIZATION around its grants, the owner of default privileges by FOR ROLE.
GRANTEE = re.compile(r'^(?:GRANT|REVOKE) .* (?:TO|FROM) (%s)(?: WITH GRANT OPTION)?(?: GRANTED BY (%s))?;$'
                     % (IDENT, IDENT))
SESSION_ROLE = re.compile(r'^SET (?:SESSION AUTHORIZATION|ROLE) (%s);$' % IDENT)
DEFAULT_FOR = re.compile(r'^ALTER DEFAULT PRIVILEGES FOR ROLE (%s) ' % IDENT)


def unquote(ident):
    if ident.startswith('"'):
        return ident[1:-1].replace('""', '"')
    return ident


def acl_entries(listing):
    """The privilege entries of a ``pg_restore -l`` listing."""
    return [line for line in listing.splitlines() if ACL_ENTRY.match(line)]


def named_roles(script):
    """Roles the SQL of privilege entries names (PUBLIC is not a role)."""
    roles = set()
    for line in script.splitlines():
        for pattern in (GRANTEE, SESSION_ROLE, DEFAULT_FOR):
            match = pattern.match(line)
            if match:
                roles.update(unquote(name) for name in match.groups() if name)
    roles.discard('PUBLIC')
    return roles


def missing_roles(conn, roles):
    present = set(row[0] for row in conn.execute(
        'SELECT rolname FROM pg_roles WHERE rolname = ANY(%s)', (sorted(roles),)).fetchall())
    return sorted(set(roles) - present)


def is_stand_in(conn, role):
    row = conn.execute("SELECT shobj_description(oid, 'pg_authid') FROM pg_roles WHERE rolname = %s",
                       (role,)).fetchone()
    return row is not None and row[0] == STAND_IN_COMMENT


def create_stand_ins(conn, roles):
    for role in roles:
        ident = sql.Identifier(role)
        conn.execute(sql.SQL('CREATE ROLE {} NOLOGIN').format(ident))
        conn.execute(sql.SQL('COMMENT ON ROLE {} IS {}').format(ident, sql.Literal(STAND_IN_COMMENT)))


def drop_stand_ins(params, dbname, roles):
    """Take back in ``dbname`` what the stand-ins were given (objects they own go to the restoring user, as with
    no_owner), then drop them. Only roles still marked as stand-ins are touched."""
    if not roles:
        return
    with connect(params, dbname=dbname, application_name='stackops-restore') as conn:
        for role in roles:
            if not is_stand_in(conn, role):
                continue
            ident = sql.Identifier(role)
            conn.execute(sql.SQL('REASSIGN OWNED BY {} TO CURRENT_USER').format(ident))
            conn.execute(sql.SQL('DROP OWNED BY {}').format(ident))
            conn.execute(sql.SQL('DROP ROLE {}').format(ident))
