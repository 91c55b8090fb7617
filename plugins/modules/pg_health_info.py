#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, stackops maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function
__metaclass__ = type

DOCUMENTATION = r'''
---
module: pg_health_info
short_description: PostgreSQL readiness, connection usage and server health checks
version_added: 0.1.0
description:
  - Connects, runs C(SELECT 1) and reports the server version (readiness), then runs the selected
    O(checks), each returning a health check with severity OK, WARNING or CRITICAL.
  - When the server is not reachable only the readiness check is returned, as CRITICAL.
  - With O(wait=true) it first waits until the server accepts connections, which makes it the
    gate for the database tier during startup.
  - Read-only; never changes anything.
author:
  - stackops maintainers (@stackops)
requirements:
  - psycopg >= 3 on the managed host
options:
  checks:
    description:
      - Checks to run after readiness (which always runs).
      - V(connections) - client connections by state against C(max_connections).
      - V(long_queries) - the longest running active statement.
      - V(idle_in_transaction) - the oldest session idle inside an open transaction (holds locks, blocks vacuum).
      - V(blocking_locks) - sessions waiting on locks held by others, by wait time.
      - V(database_sizes) - size of every database (informational, always OK).
      - V(wraparound) - transaction ID age of the oldest database as a percentage of the 2^31 limit.
      - V(cache_hit_ratio) - share of block reads served from shared buffers since statistics reset.
      - V(bloat) - dead tuple ratio of the tables in O(login_db), an estimate of table bloat.
    type: list
    elements: str
    choices: [readiness, connections, long_queries, idle_in_transaction, blocking_locks, database_sizes, wraparound, cache_hit_ratio, bloat]
    default: [readiness, connections]
  connections_warning:
    description: Connection usage percentage (client backends / max_connections) that is a WARNING.
    type: float
    default: 80
  connections_critical:
    description: Connection usage percentage that is CRITICAL.
    type: float
    default: 95
  long_query_warning:
    description: Seconds an active statement may run before it is a WARNING.
    type: float
    default: 60
  long_query_critical:
    description: Seconds an active statement may run before it is CRITICAL.
    type: float
    default: 300
  idle_in_transaction_warning:
    description: Seconds a session may sit idle in a transaction before it is a WARNING.
    type: float
    default: 60
  idle_in_transaction_critical:
    description: Seconds idle in a transaction that is CRITICAL.
    type: float
    default: 600
  lock_wait_warning:
    description: Seconds a session may wait on another's lock before it is a WARNING.
    type: float
    default: 30
  lock_wait_critical:
    description: Seconds of lock wait that is CRITICAL.
    type: float
    default: 300
  wraparound_warning:
    description: Transaction ID age, as a percentage of 2^31, that is a WARNING.
    type: float
    default: 50
  wraparound_critical:
    description: Transaction ID age percentage that is CRITICAL; PostgreSQL stops assigning XIDs near 100.
    type: float
    default: 75
  cache_hit_warning:
    description: Cache hit ratio percentage at or below which it is a WARNING.
    type: float
    default: 90
  cache_hit_critical:
    description: Cache hit ratio percentage at or below which it is CRITICAL.
    type: float
    default: 80
  cache_hit_min_blocks:
    description: Block accesses needed before the cache hit ratio is judged; fresh servers are always OK.
    type: int
    default: 10000
  bloat_warning:
    description: Dead tuple percentage of a table that is a WARNING.
    type: float
    default: 20
  bloat_critical:
    description: Dead tuple percentage of a table that is CRITICAL.
    type: float
    default: 50
  bloat_min_rows:
    description: Tables with fewer live plus dead rows are not judged.
    type: int
    default: 10000
  wait:
    description: Wait until the server accepts connections and answers C(SELECT 1), failing after O(wait_timeout).
    type: bool
    default: false
  wait_timeout:
    description: Seconds to wait for readiness.
    type: float
    default: 60
  interval:
    description: Seconds between connection attempts while waiting.
    type: float
    default: 1
extends_documentation_fragment:
  - stackops.runbooks.postgres
  - stackops.runbooks.attributes
  - stackops.runbooks.attributes.info_module
  - stackops.runbooks.attributes.actiongroup_postgresql
notes:
  - O(login_user) needs C(pg_monitor) (or superuser) to see other roles' sessions.
  - Supports check mode; it is read-only, so check mode behaves like a normal run.
seealso:
  - module: stackops.runbooks.compose_service_info
'''

EXAMPLES = r'''
- name: Readiness and connection usage of the application database
  stackops.runbooks.pg_health_info:
    login_host: 127.0.0.1
    login_port: 5432
    login_user: app
    login_password_file: /srv/app/secrets/db_password
    login_db: appdb
  register: pg

- name: Wait for the database tier during startup
  stackops.runbooks.pg_health_info:
    login_user: app
    login_password_file: /srv/app/secrets/db_password
    login_db: appdb
    wait: true
    wait_timeout: 120

- name: Every check, with a tighter long-query limit
  stackops.runbooks.pg_health_info:
    login_user: app
    login_password_file: /srv/app/secrets/db_password
    checks: [readiness, connections, long_queries, idle_in_transaction, blocking_locks, database_sizes, wraparound, cache_hit_ratio, bloat]
    long_query_warning: 10
'''

RETURN = r'''
ready:
  description: Whether the server accepted a connection and answered C(SELECT 1).
  returned: always
  type: bool
server_version:
  description: Server version string, for example C(15.8).
  returned: when ready
  type: str
in_recovery:
  description: Whether the server is a standby (in recovery).
  returned: when ready
  type: bool
connections:
  description: by_state (client backends per state), total, max_connections, superuser_reserved_connections, used_percent.
  returned: when O(checks) contains V(connections) and the server is ready
  type: dict
database_sizes:
  description: Database name to size in bytes.
  returned: when O(checks) contains V(database_sizes) and the server is ready
  type: dict
elapsed:
  description: Seconds spent connecting, including waiting.
  returned: always
  type: float
attempts:
  description: Connection attempts made (more than one only with O(wait=true)).
  returned: always
  type: int
checks:
  description: Health checks (name, severity, message, details); session details never include query text.
  returned: always
  type: list
  elements: dict
'''

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.stackops.runbooks.plugins.module_utils.health_pg import pg_health_spec, run_pg_health, threshold_problem
from ansible_collections.stackops.runbooks.plugins.module_utils.pg import pg_connection_spec, prepare


def main():
    spec = pg_connection_spec()
    spec.update(pg_health_spec())
    module = AnsibleModule(argument_spec=spec, supports_check_mode=True)
    problem = threshold_problem(module.params)
    if problem:
        module.fail_json(msg=problem)
    prepare(module)
    result, failure = run_pg_health(module.params)
    if failure:
        module.fail_json(msg=failure, **result)
    module.exit_json(**result)


if __name__ == '__main__':
    main()
