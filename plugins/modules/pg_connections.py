#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, stackops maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import (absolute_import, division, print_function)
__metaclass__ = type

DOCUMENTATION = r'''
---
module: pg_connections
short_description: Report PostgreSQL client sessions and terminate or cancel the ones that match filters
version_added: 0.1.0
description:
  - Reads C(pg_stat_activity), reports connection usage against C(max_connections), and terminates (or cancels the
    current query of) the client sessions that match every given filter.
  - Only client backends are ever targeted; its own session (C(pg_backend_pid())), replication connections (walsender),
    autovacuum and other background workers are never touched.
  - At least one filter is required to terminate or cancel, so a bare task cannot disconnect every client.
  - In check mode it returns the sessions it would terminate in RV(targets) and terminates none.
author:
  - stackops maintainers (@stackops)
options:
  action:
    description:
      - V(terminate) ends matching sessions (C(pg_terminate_backend)), V(cancel) cancels their current query
        (C(pg_cancel_backend)), V(list) only reports them.
    type: str
    choices: [terminate, cancel, list]
    default: terminate
  states:
    description:
      - Session states to match, as C(pg_stat_activity.state) spells them. Empty means any state.
    type: list
    elements: str
    choices: [active, idle, idle in transaction, idle in transaction (aborted), fastpath function call, disabled]
    default: []
  min_state_age:
    description:
      - Match sessions whose state has not changed for at least this many seconds (C(now() - state_change)).
    type: int
  min_xact_age:
    description:
      - Match sessions whose transaction has been open for at least this many seconds (C(now() - xact_start)).
        Sessions outside a transaction never match.
    type: int
  users:
    description: Match only these roles. Empty means any role.
    type: list
    elements: str
    default: []
  applications:
    description: Match only these C(application_name) values. Empty means any.
    type: list
    elements: str
    default: []
  databases:
    description: Match only sessions connected to these databases. Empty means any.
    type: list
    elements: str
    default: []
  exclude_users:
    description: Never match these roles.
    type: list
    elements: str
    default: []
  exclude_applications:
    description: Never match these C(application_name) values.
    type: list
    elements: str
    default: []
  wait_timeout:
    description:
      - Seconds to wait for terminated sessions to disappear from C(pg_stat_activity). Sessions still there are reported
        in RV(still_running).
    type: int
    default: 10
  include_query:
    description:
      - Include the first 200 characters of each session's current or last query in the results.
        Off by default because queries can contain personal data or secrets.
    type: bool
    default: false
extends_documentation_fragment:
  - stackops.runbooks.postgres
  - stackops.runbooks.attributes
  - stackops.runbooks.attributes.changes_state
  - stackops.runbooks.attributes.actiongroup_postgresql
notes:
  - O(login_user) must be a superuser or have C(pg_signal_backend) to end other roles' sessions.
  - Connection options are the shared ones of the C(stackops.runbooks.postgresql) action group.
  - Needs psycopg 3 on the host that runs the module.
seealso:
  - module: stackops.runbooks.pg_maintenance
'''

EXAMPLES = r'''
- name: What would be terminated? (check mode lists the targets)
  stackops.runbooks.pg_connections:
    states: [idle]
    min_state_age: 600
    login_db: appdb
  check_mode: true

- name: Free connection slots by ending sessions idle for more than 10 minutes
  stackops.runbooks.pg_connections:
    states: [idle, idle in transaction]
    min_state_age: 600
    exclude_applications: [pg_dump]
    login_db: appdb
  register: freed

- name: Report connection usage only
  stackops.runbooks.pg_connections:
    action: list
    login_db: appdb
'''

RETURN = r'''
targets:
  description: Sessions that matched the filters (in check mode, the ones that would be terminated).
  returned: always
  type: list
  elements: dict
  sample:
    - pid: 4242
      user: app
      database: appdb
      application: demo-api
      client_addr: 172.18.0.4
      state: idle
      backend_type: client backend
      state_age: 912.4
      xact_age: null
      backend_age: 3600.2
terminated:
  description: PIDs of the sessions terminated (or, with O(action=cancel), whose query was cancelled). Empty in check mode.
  returned: always
  type: list
  elements: int
  sample: [4242]
still_running:
  description: PIDs that were signalled but still showed up after O(wait_timeout) seconds.
  returned: always
  type: list
  elements: int
  sample: []
summary:
  description:
    - The run in one line - the usage found, then the sessions signalled (in check mode, that would be) or found
      with O(action=list), and O(min_state_age) when given.
  returned: success
  type: str
  sample: "connections 98/100 (98.0%); terminated 3 session(s) idle > 300 s"
usage:
  description: Connection usage of the server at the start of the run.
  returned: always
  type: dict
  sample:
    max_connections: 100
    reserved_connections: 3
    total: 14
    client_backends: 9
    usage_percent: 14.0
    by_state: {active: 1, idle: 7, idle in transaction: 1}
    by_database: {appdb: 8, postgres: 1}
    by_user: {app: 9}
    by_application: {demo-api: 8, stackops: 1}
'''

import time

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.stackops.runbooks.plugins.module_utils.pg import (
    pg_connection_spec, prepare, connect, describe_target, psycopg, sql)
from ansible_collections.stackops.runbooks.plugins.module_utils.maintenance import (
    SESSION_STATES, connections_summary, session_matches, has_session_filter)

ACTIVITY_QUERY = """
SELECT pid, usename, datname, application_name, host(client_addr), state, backend_type,
       extract(epoch FROM now() - state_change)::float8,
       extract(epoch FROM now() - xact_start)::float8,
       extract(epoch FROM now() - backend_start)::float8,
       left(query, 200),
       pid = pg_backend_pid()
  FROM pg_stat_activity
"""

USAGE_QUERY = """
SELECT current_setting('max_connections')::int,
       current_setting('superuser_reserved_connections')::int,
       (SELECT count(*) FROM pg_stat_activity)
"""

FUNCTIONS = {'terminate': 'pg_terminate_backend', 'cancel': 'pg_cancel_backend'}


def read_sessions(conn):
    sessions = []
    for row in conn.execute(ACTIVITY_QUERY).fetchall():
        (pid, user, database, application, client, state, backend_type, state_age, xact_age, backend_age,
         query, own) = row
        sessions.append(dict(pid=pid, user=user, database=database, application=application, client_addr=client,
                             state=state, backend_type=backend_type,
                             state_age=round(state_age, 1) if state_age is not None else None,
                             xact_age=round(xact_age, 1) if xact_age is not None else None,
                             backend_age=round(backend_age, 1) if backend_age is not None else None,
                             query=query, own=own))
    return sessions


def count_by(sessions, key):
    counts = {}
    for session in sessions:
        value = session.get(key) or ''
        counts[value] = counts.get(value, 0) + 1
    return counts


def usage(conn, sessions):
    max_connections, reserved, total = conn.execute(USAGE_QUERY).fetchone()
    clients = [s for s in sessions if s['backend_type'] == 'client backend']
    return dict(max_connections=max_connections, reserved_connections=reserved, total=total,
                client_backends=len(clients), usage_percent=round(100.0 * len(clients) / max_connections, 1),
                by_state=count_by(clients, 'state'), by_database=count_by(clients, 'database'),
                by_user=count_by(clients, 'user'), by_application=count_by(clients, 'application'))


def main():
    spec = pg_connection_spec()
    spec.update(
        action=dict(type='str', choices=['terminate', 'cancel', 'list'], default='terminate'),
        states=dict(type='list', elements='str', choices=SESSION_STATES, default=[]),
        min_state_age=dict(type='int'),
        min_xact_age=dict(type='int'),
        users=dict(type='list', elements='str', default=[]),
        applications=dict(type='list', elements='str', default=[]),
        databases=dict(type='list', elements='str', default=[]),
        exclude_users=dict(type='list', elements='str', default=[]),
        exclude_applications=dict(type='list', elements='str', default=[]),
        wait_timeout=dict(type='int', default=10),
        include_query=dict(type='bool', default=False),
    )
    module = AnsibleModule(argument_spec=spec, supports_check_mode=True)
    prepare(module)
    params = module.params

    def finish(result):
        result['summary'] = connections_summary(result, params['action'], module.check_mode, params['min_state_age'])
        module.exit_json(**result)
    filters = dict((key, params[key]) for key in ('states', 'users', 'applications', 'databases', 'exclude_users',
                                                  'exclude_applications', 'min_state_age', 'min_xact_age'))
    action = params['action']
    if action != 'list' and not has_session_filter(filters):
        module.fail_json(msg='refusing to %s every client session on %s: give at least one of states, min_state_age, '
                             'min_xact_age, users, applications or databases' % (action, describe_target(params)))

    try:
        conn = connect(params, application_name='stackops-connections')
    except psycopg.Error as exc:
        module.fail_json(msg='cannot connect to %s: %s; check the connection options and that the server is up'
                             % (describe_target(params), str(exc).strip()))
    result = dict(changed=False, targets=[], terminated=[], still_running=[])
    with conn:
        try:
            sessions = read_sessions(conn)
            result['usage'] = usage(conn, sessions)
            # Only client backends, never our own session: walsenders, autovacuum and background workers are safe.
            candidates = [s for s in sessions if s['backend_type'] == 'client backend' and not s['own']]
            targets = [s for s in candidates if session_matches(s, filters)]
            for target in targets:
                target.pop('own')
                if not params['include_query']:
                    target.pop('query')
            result['targets'] = targets
            if action == 'list' or not targets:
                finish(result)
            if module.check_mode:
                result['changed'] = True
                finish(result)
            signal = sql.SQL("SELECT {}(pid) FROM pg_stat_activity WHERE pid = %s AND backend_type = 'client backend' "
                             "AND pid <> pg_backend_pid()").format(sql.Identifier(FUNCTIONS[action]))
            signalled = []
            for target in targets:
                # The pid is re-checked to still be a client backend, so a recycled pid is never hit.
                row = conn.execute(signal, [target['pid']]).fetchone()
                if row and row[0]:
                    signalled.append(target['pid'])
            result['terminated'] = signalled
            result['changed'] = bool(signalled)
            if action == 'terminate' and signalled:
                deadline = time.monotonic() + params['wait_timeout']
                remaining = signalled
                while remaining and time.monotonic() < deadline:
                    time.sleep(0.2)
                    rows = conn.execute('SELECT pid FROM pg_stat_activity WHERE pid = ANY(%s)', [signalled]).fetchall()
                    remaining = [r[0] for r in rows]
                result['still_running'] = remaining
        except psycopg.Error as exc:
            module.fail_json(msg='reading or signalling sessions on %s failed: %s; the login role needs superuser or '
                                 'pg_signal_backend' % (describe_target(params), str(exc).strip()), **result)
    finish(result)


if __name__ == '__main__':
    main()
