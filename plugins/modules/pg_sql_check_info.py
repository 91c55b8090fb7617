#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, stackops maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function
__metaclass__ = type

DOCUMENTATION = r'''
---
module: pg_sql_check_info
short_description: Run SQL checks with an expected answer against a database, read-only
version_added: 0.3.0
description:
  - Runs each check's query in a read-only transaction with a statement timeout and compares the first column of
    its first row with the expected answer - V(true)/V(false)/V(null) in any case (and psql's C(t)/C(f)), numbers by
    value (C(3) equals C(3.0)), anything else as text.
  - The restore drill (docs/drill.md) runs C(stackops_drill_checks) that have C(sql) with it, against the restored copy.
  - Fails naming every check whose answer differs (or whose query failed), unless O(fail_on_mismatch=false).
author:
  - stackops maintainers (@stackops)
options:
  checks:
    description:
      - Checks, each C(name), C(sql) (one query), C(expect) (the answer) and optionally C(database) (default
        O(login_db)).
    type: list
    elements: dict
    required: true
  statement_timeout:
    description: Seconds a check's query may run.
    type: int
    default: 30
  fail_on_mismatch:
    description: Fail when a check's answer differs from its expectation.
    type: bool
    default: true
extends_documentation_fragment:
  - stackops.runbooks.postgres
  - stackops.runbooks.attributes
  - stackops.runbooks.attributes.info_module
  - stackops.runbooks.attributes.actiongroup_postgresql
seealso:
  - module: stackops.runbooks.compose_drill
'''

EXAMPLES = r'''
- name: The restored copy holds orders
  stackops.runbooks.pg_sql_check_info:
    login_host: 172.18.0.2
    login_user: shop
    login_password_file: /srv/shop/secrets/db_password
    login_db: shop
    checks:
      - name: orders present
        sql: select count(*) > 0 from orders
        expect: true
'''

RETURN = r'''
results:
  description: One entry per check - C(name), C(ok), C(expected), C(got) (the answer as text), C(message).
  returned: always
  type: list
  elements: dict
failed_checks:
  description: Names of the checks that did not get their expected answer.
  returned: always
  type: list
  elements: str
'''

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.stackops.runbooks.plugins.module_utils.drill import normalise_answer, sql_expectation_met
from ansible_collections.stackops.runbooks.plugins.module_utils.pg import connect, describe_target, pg_connection_spec, prepare


def run_check(params, check, timeout):
    name = check.get('name') or check.get('sql')
    if not check.get('sql') or 'expect' not in check:
        return dict(name=name, ok=False, expected=None, got=None,
                    message='check %s needs sql and expect' % name)
    database = check.get('database') or params['login_db']
    expected = normalise_answer(check['expect'])
    try:
        with connect(params, dbname=database, autocommit=False, application_name='stackops-check',
                     options='-c default_transaction_read_only=on -c statement_timeout=%d' % (timeout * 1000)) as conn:
            row = conn.execute(check['sql']).fetchone()
            conn.rollback()
    except Exception as exc:  # pylint: disable=broad-except
        return dict(name=name, ok=False, expected=expected, got=None,
                    message='check %s failed on %s: %s' % (name, describe_target(params, database), str(exc).strip()))
    got = row[0] if row else None
    ok = row is not None and sql_expectation_met(got, check['expect'])
    message = 'check %s: %s' % (name, 'got %s' % normalise_answer(got) if ok else 'expected %s, got %s' % (
        expected, normalise_answer(got) if row is not None else 'no row'))
    return dict(name=name, ok=ok, expected=expected, got=None if row is None else normalise_answer(got), message=message)


def main():
    spec = pg_connection_spec()
    spec.update(
        checks=dict(type='list', elements='dict', required=True),
        statement_timeout=dict(type='int', default=30),
        fail_on_mismatch=dict(type='bool', default=True),
    )
    module = AnsibleModule(argument_spec=spec, supports_check_mode=True)
    prepare(module)
    results = [run_check(module.params, check, module.params['statement_timeout']) for check in module.params['checks']]
    failed = [item['name'] for item in results if not item['ok']]
    if failed and module.params['fail_on_mismatch']:
        module.fail_json(msg='SQL check(s) failed: %s' % '; '.join(item['message'] for item in results if not item['ok']),
                         results=results, failed_checks=failed)
    module.exit_json(changed=False, results=results, failed_checks=failed)


if __name__ == '__main__':
    main()
