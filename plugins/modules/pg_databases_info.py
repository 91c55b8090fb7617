#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, stackops maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function
__metaclass__ = type

DOCUMENTATION = r'''
---
module: pg_databases_info
short_description: List the databases of a PostgreSQL server
version_added: 0.2.0
description:
  - Lists every database of the server that is not a template and accepts connections, with its encoding, locale,
    owner and size. C(stackops backup --all-databases) backs up exactly this list.
  - Read-only; never changes anything.
author:
  - stackops maintainers (@stackops)
requirements:
  - psycopg >= 3 on the managed host
options:
  exclude:
    description: Database names to leave out of RV(names).
    type: list
    elements: str
    default: []
extends_documentation_fragment:
  - stackops.runbooks.postgres
  - stackops.runbooks.attributes
  - stackops.runbooks.attributes.info_module
  - stackops.runbooks.attributes.actiongroup_postgresql
seealso:
  - module: stackops.runbooks.pg_backup
  - module: stackops.runbooks.pg_backup_group_info
'''

EXAMPLES = r'''
- name: Which databases does the server hold?
  stackops.runbooks.pg_databases_info:
    login_password_file: /etc/stackops/db_password
  register: server

- name: Back up each of them
  stackops.runbooks.pg_backup:
    database: "{{ item }}"
    backup_dir: /var/backups/stackops
  loop: "{{ server.names }}"
'''

RETURN = r'''
names:
  description: Names of the listed databases, sorted.
  returned: always
  type: list
  elements: str
  sample: [appdb, postgres, reports]
databases:
  description: One entry per listed database.
  returned: always
  type: list
  elements: dict
  contains:
    name:
      description: Database name.
      type: str
    encoding:
      description: Server encoding, for example C(UTF8) or C(SQL_ASCII).
      type: str
    collate:
      description: C(LC_COLLATE).
      type: str
    ctype:
      description: C(LC_CTYPE).
      type: str
    owner:
      description: Owning role.
      type: str
    size_bytes:
      description: C(pg_database_size).
      type: int
left_out:
  description: Databases left out, with the reason (template, no connections allowed, excluded).
  returned: always
  type: list
  elements: dict
'''

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.stackops.runbooks.plugins.module_utils.pg import (
    connect_server, describe_target, pg_connection_spec, prepare)

QUERY = ("SELECT d.datname, pg_encoding_to_char(d.encoding), d.datcollate, d.datctype, r.rolname, d.datistemplate, "
         "d.datallowconn, CASE WHEN d.datallowconn THEN pg_database_size(d.oid) END "
         "FROM pg_database d JOIN pg_roles r ON r.oid = d.datdba ORDER BY d.datname")


def main():
    spec = pg_connection_spec()
    spec.update(exclude=dict(type='list', elements='str', default=[]))
    module = AnsibleModule(argument_spec=spec, supports_check_mode=True)
    prepare(module)
    params = module.params
    try:
        with connect_server(params, application_name='stackops-databases-info') as conn:
            rows = conn.execute(QUERY).fetchall()
    except Exception as exc:  # pylint: disable=broad-except
        module.fail_json(msg='cannot list the databases of %s: %s; check that the server is up and the credentials' % (
            describe_target(params), str(exc).strip()))
    databases, left_out = [], []
    for name, encoding, collate, ctype, owner, template, allow, size in rows:
        reason = ('template' if template else 'does not allow connections' if not allow
                  else 'excluded' if name in params['exclude'] else None)
        if reason:
            left_out.append(dict(name=name, reason=reason))
            continue
        databases.append(dict(name=name, encoding=encoding, collate=collate, ctype=ctype, owner=owner,
                              size_bytes=int(size)))
    module.exit_json(changed=False, names=[entry['name'] for entry in databases], databases=databases, left_out=left_out)


if __name__ == '__main__':
    main()
