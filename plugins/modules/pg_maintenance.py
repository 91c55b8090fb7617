#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, stackops maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import (absolute_import, division, print_function)
__metaclass__ = type

DOCUMENTATION = r'''
---
module: pg_maintenance
short_description: Run VACUUM, ANALYZE or REINDEX on PostgreSQL tables with timeouts, lock safety and size reports
version_added: 0.1.0
description:
  - Runs one maintenance operation (VACUUM in its variants, ANALYZE or REINDEX) table by table on one or more databases,
    optionally only on the tables whose estimated bloat is over a threshold.
  - Every statement runs with O(lock_timeout) and O(statement_timeout), so the module never waits forever behind a long
    transaction that holds a lock on the table.
  - Operations that take an ACCESS EXCLUSIVE lock (VACUUM FULL, REINDEX without CONCURRENTLY or on PostgreSQL before 12)
    are refused unless O(allow_exclusive_locks=true).
  - Reports the duration of each statement and the table and index sizes before and after, so the space reclaimed is known.
  - In check mode it connects, selects the tables and returns the statements it would run, without running them.
author:
  - stackops maintainers (@stackops)
options:
  operation:
    description:
      - The maintenance to run on each selected table.
      - V(vacuum_freeze) is C(VACUUM (FREEZE, ANALYZE)); V(vacuum_full) is C(VACUUM (FULL, ANALYZE)).
    type: str
    required: true
    choices: [vacuum, vacuum_analyze, vacuum_full, vacuum_freeze, analyze, reindex]
  databases:
    description:
      - Databases to work on, one connection each. Empty means O(login_db).
    type: list
    elements: str
    default: []
  schemas:
    description:
      - Only tables in these schemas. Empty means every schema except C(pg_catalog), C(information_schema) and C(pg_toast).
    type: list
    elements: str
    default: []
  tables:
    description:
      - Only these tables, as C(table) (resolved through the search path) or C(schema.table).
      - A table that does not exist fails the module before any work starts.
    type: list
    elements: str
    default: []
  bloat_threshold:
    description:
      - Only tables whose estimated bloat in percent is at least this value. Unset means every selected table.
      - The estimate comes from C(pgstattuple_approx) (dead plus free space) when the C(pgstattuple) extension is installed
        in the database and O(bloat_method) allows it, else from the C(n_dead_tup) share in C(pg_stat_user_tables).
    type: float
  bloat_method:
    description:
      - How bloat is estimated. V(auto) uses C(pgstattuple) when it is installed, else the statistics.
    type: str
    choices: [auto, stats, pgstattuple]
    default: auto
  min_dead_tuples:
    description:
      - With O(bloat_threshold) and statistics-based estimates, skip tables with fewer dead tuples than this.
    type: int
    default: 0
  min_table_bytes:
    description:
      - With O(bloat_threshold), skip tables whose total size is below this many bytes.
    type: int
    default: 0
  concurrently:
    description:
      - For V(reindex), use C(REINDEX TABLE CONCURRENTLY) on PostgreSQL 12 and later.
      - Without it (or on older servers) REINDEX blocks writes and needs O(allow_exclusive_locks=true).
    type: bool
    default: true
  allow_exclusive_locks:
    description:
      - Allow operations that take an ACCESS EXCLUSIVE lock and block the application while they run.
    type: bool
    default: false
  lock_timeout:
    description:
      - PostgreSQL C(lock_timeout) for each statement, e.g. V(5s). V(0) waits forever and is not advised.
    type: str
    default: 10s
  statement_timeout:
    description:
      - PostgreSQL C(statement_timeout) for each statement, e.g. V(30min). V(0) means no limit.
    type: str
    default: 1h
  deadline:
    description:
      - An ISO 8601 time (UTC unless it has an offset). Statements that would start after it are skipped and reported in RV(skipped_tables);
        a statement already running is not interrupted (O(statement_timeout) bounds it).
    type: str
extends_documentation_fragment:
  - stackops.runbooks.postgres
  - stackops.runbooks.caller
  - stackops.runbooks.attributes
  - stackops.runbooks.attributes.changes_state
  - stackops.runbooks.attributes.actiongroup_postgresql
notes:
  - Connection options are the shared ones of the C(stackops.runbooks.postgresql) action group.
  - Needs psycopg 3 on the host that runs the module.
  - If C(REINDEX CONCURRENTLY) fails, the invalid C(_ccnew) indexes it left behind on that table are dropped.
seealso:
  - module: stackops.runbooks.pg_connections
'''

EXAMPLES = r'''
- name: Weekly VACUUM ANALYZE of the application database
  stackops.runbooks.pg_maintenance:
    operation: vacuum_analyze
    login_db: appdb
    login_user: app
    login_password_file: /srv/app/secrets/db_password

- name: Monthly VACUUM FULL of tables over 20 % bloat, never waiting more than 5 s for a lock
  stackops.runbooks.pg_maintenance:
    operation: vacuum_full
    bloat_threshold: 20
    allow_exclusive_locks: true
    lock_timeout: 5s
    login_db: appdb

- name: Rebuild the indexes of one table without blocking writes
  stackops.runbooks.pg_maintenance:
    operation: reindex
    tables: [public.records]
    login_db: appdb
'''

RETURN = r'''
actions:
  description: One entry per statement run (or, in check mode, to be run), in order.
  returned: always
  type: list
  elements: dict
  sample:
    - database: appdb
      schema: public
      table: records
      statement: VACUUM (FULL, ANALYZE) "public"."records"
      exclusive_lock: true
      bloat_percent: 48.2
      bloat_method: stats
      duration_seconds: 0.84
      total_bytes_before: 18743296
      total_bytes_after: 9633792
      table_bytes_before: 13950976
      table_bytes_after: 7241728
      index_bytes_before: 4759552
      index_bytes_after: 2359296
      reclaimed_bytes: 9109504
      ran: true
skipped_tables:
  description: Tables not worked on, with the reason (below the bloat threshold, deadline reached).
  returned: always
  type: list
  elements: dict
  sample: [{database: appdb, schema: public, table: small, reason: bloat 0.0% below threshold 20.0%}]
reclaimed_bytes:
  description: Sum of the bytes reclaimed over all statements run (can be negative when ANALYZE or REINDEX grew a table).
  returned: always
  type: int
  sample: 9109504
reclaimed:
  description: RV(reclaimed_bytes) in human units.
  returned: always
  type: str
  sample: 8.7 MiB
duration_seconds:
  description: Wall time of the whole run.
  returned: always
  type: float
  sample: 1.92
deadline_reached:
  description: Whether statements were skipped because O(deadline) had passed.
  returned: always
  type: bool
  sample: false
server_version:
  description: PostgreSQL server version number (e.g. 150010).
  returned: always
  type: int
  sample: 150010
summary:
  description:
    - The run as one entry of a maintenance window's report (C(stackops_result.done)) - C(name) (the operation),
      C(changed), C(tables) (every table worked on, in order), C(tables_skipped) (how many), C(reclaimed_bytes),
      C(reclaimed), C(duration_seconds), C(deadline_reached) and C(actions).
  returned: always
  type: dict
'''

import time

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.stackops.runbooks.plugins.module_utils.caller_words import option_variables_spec, setting
from ansible_collections.stackops.runbooks.plugins.module_utils.pg import (
    pg_connection_spec, prepare, connect, describe_target, psycopg, sql)
from ansible_collections.stackops.runbooks.plugins.module_utils.maintenance import (
    OPERATIONS, needs_exclusive_lock, parse_deadline, seconds_left, bloat_percent_from_stats,
    select_bloated, human_bytes, task_summary, REINDEX_CONCURRENTLY_MIN_VERSION)

TABLES_QUERY = """
SELECT c.oid, n.nspname, c.relname,
       pg_total_relation_size(c.oid), pg_relation_size(c.oid), pg_indexes_size(c.oid),
       coalesce(s.n_live_tup, 0), coalesce(s.n_dead_tup, 0), c.relkind
  FROM pg_class c
  JOIN pg_namespace n ON n.oid = c.relnamespace
  LEFT JOIN pg_stat_user_tables s ON s.relid = c.oid
 WHERE c.relkind IN ('r', 'm')
   AND n.nspname NOT IN ('pg_catalog', 'information_schema')
   AND n.nspname NOT LIKE 'pg\\_toast%%'
   AND n.nspname NOT LIKE 'pg\\_temp\\_%%'
   AND (cardinality(%(oids)s::oid[]) = 0 OR c.oid = ANY(%(oids)s::oid[]))
   AND (cardinality(%(schemas)s::text[]) = 0 OR n.nspname = ANY(%(schemas)s::text[]))
 ORDER BY n.nspname, c.relname
"""

SIZES_QUERY = "SELECT pg_total_relation_size(%(oid)s::oid), pg_relation_size(%(oid)s::oid), pg_indexes_size(%(oid)s::oid)"


class MaintenanceError(Exception):
    pass


class Maintenance(object):
    def __init__(self, module):
        self.module = module
        self.params = module.params
        self.actions = []
        self.skipped = []
        self.deadline_reached = False
        self.server_version = None
        try:
            self.deadline = parse_deadline(self.params.get('deadline'))
        except ValueError as exc:
            module.fail_json(msg='invalid deadline: %s' % exc)

    # discovery -----------------------------------------------------------
    def resolve_tables(self, conn, dbname):
        oids = []
        for name in self.params['tables']:
            row = conn.execute('SELECT to_regclass(%s)::oid', [name]).fetchone()
            if row is None or row[0] is None:
                raise MaintenanceError(
                    'table %s not found in database %s (%s); check the name (schema.table) or remove it from tables'
                    % (name, dbname, describe_target(self.params, dbname)))
            oids.append(row[0])
        return oids

    def pgstattuple_schema(self, conn):
        row = conn.execute("SELECT extnamespace::regnamespace::text FROM pg_extension WHERE extname = 'pgstattuple'").fetchone()
        return row[0] if row else None

    def discover(self, conn, dbname):
        oids = self.resolve_tables(conn, dbname)
        rows = conn.execute(TABLES_QUERY, {'oids': oids, 'schemas': self.params['schemas']}).fetchall()
        method = self.params['bloat_method']
        stattuple = None
        if self.params.get('bloat_threshold') is not None and method in ('auto', 'pgstattuple'):
            stattuple = self.pgstattuple_schema(conn)
            if stattuple is None and method == 'pgstattuple':
                raise MaintenanceError(
                    'bloat_method=pgstattuple but the pgstattuple extension is not installed in database %s; '
                    'run CREATE EXTENSION pgstattuple there or use bloat_method=auto' % dbname)
        tables = []
        for oid, schema, name, total, table_bytes, index_bytes, live, dead, relkind in rows:
            table = dict(database=dbname, schema=schema, table=name, oid=oid, total_bytes=total,
                         table_bytes=table_bytes, index_bytes=index_bytes, live_tuples=live, dead_tuples=dead,
                         bloat_method='stats', bloat_percent=bloat_percent_from_stats(live, dead))
            if stattuple and relkind == 'r':
                query = sql.SQL('SELECT dead_tuple_percent + approx_free_percent FROM {}.pgstattuple_approx(%s::oid::regclass)').format(
                    sql.Identifier(stattuple))
                table['bloat_percent'] = round(float(conn.execute(query, [oid]).fetchone()[0]), 2)
                table['bloat_method'] = 'pgstattuple'
            tables.append(table)
        return select_bloated(tables, self.params.get('bloat_threshold'), self.params['min_dead_tuples'],
                              self.params['min_table_bytes'])

    # statements ----------------------------------------------------------
    def statement(self, table):
        operation = self.params['operation']
        target = sql.SQL('{}.{}').format(sql.Identifier(table['schema']), sql.Identifier(table['table']))
        if operation == 'analyze':
            return sql.SQL('ANALYZE {}').format(target)
        if operation == 'reindex':
            if self.params['concurrently'] and self.server_version >= REINDEX_CONCURRENTLY_MIN_VERSION:
                return sql.SQL('REINDEX TABLE CONCURRENTLY {}').format(target)
            return sql.SQL('REINDEX TABLE {}').format(target)
        options = OPERATIONS[operation][0]
        if not options:
            return sql.SQL('VACUUM {}').format(target)
        return sql.SQL('VACUUM ({}) {}').format(sql.SQL(', ').join(sql.SQL(opt) for opt in options), target)

    def set_timeouts(self, conn):
        conn.execute("SELECT set_config('lock_timeout', %s, false), set_config('statement_timeout', %s, false)",
                     [self.params['lock_timeout'], self.params['statement_timeout']])

    def drop_invalid_ccnew(self, conn, table):
        """REINDEX CONCURRENTLY leaves invalid *_ccnew indexes when it fails; drop them so the next run starts clean."""
        dropped = []
        rows = conn.execute(
            "SELECT n.nspname, i.relname FROM pg_index x JOIN pg_class i ON i.oid = x.indexrelid "
            "JOIN pg_namespace n ON n.oid = i.relnamespace "
            "WHERE x.indrelid = %s::oid AND NOT x.indisvalid AND i.relname ~ '_ccnew[0-9]*$'", [table['oid']]).fetchall()
        for schema, index in rows:
            try:
                conn.execute(sql.SQL('DROP INDEX CONCURRENTLY IF EXISTS {}.{}').format(sql.Identifier(schema), sql.Identifier(index)))
                dropped.append('%s.%s' % (schema, index))
            except psycopg.Error:
                pass
        return dropped

    def run_one(self, conn, table, statement_text, statement):
        action = dict(database=table['database'], schema=table['schema'], table=table['table'],
                      statement=statement_text, exclusive_lock=self.exclusive, bloat_percent=table['bloat_percent'],
                      bloat_method=table['bloat_method'], total_bytes_before=table['total_bytes'],
                      table_bytes_before=table['table_bytes'], index_bytes_before=table['index_bytes'], ran=False)
        left = seconds_left(self.deadline)
        if left is not None and left <= 0:
            self.deadline_reached = True
            self.skipped.append(dict(database=table['database'], schema=table['schema'], table=table['table'],
                                     statement=statement_text, reason='window deadline %s reached' % self.deadline.isoformat()))
            return
        self.actions.append(action)
        if self.module.check_mode:
            return
        started = time.monotonic()
        try:
            conn.execute(statement)
        except psycopg.Error as exc:
            action['duration_seconds'] = round(time.monotonic() - started, 3)
            action['error'] = str(exc).strip()
            hint = 'fix the cause and run again'
            if isinstance(exc, psycopg.errors.LockNotAvailable):
                hint = ('another session holds a conflicting lock (a long transaction?); find it with '
                        'stackops.runbooks.pg_connections or retry later; lock_timeout is %s' % self.params['lock_timeout'])
            elif isinstance(exc, psycopg.errors.QueryCanceled):
                hint = 'the statement hit statement_timeout=%s; raise it or run outside peak hours' % self.params['statement_timeout']
            if self.params['operation'] == 'reindex':
                dropped = self.drop_invalid_ccnew(conn, table)
                if dropped:
                    action['dropped_invalid_indexes'] = dropped
            raise MaintenanceError('%s failed on %s: %s; %s' % (statement_text, describe_target(self.params, table['database']),
                                                                str(exc).strip(), hint))
        action['duration_seconds'] = round(time.monotonic() - started, 3)
        total, table_bytes, index_bytes = conn.execute(SIZES_QUERY, {'oid': table['oid']}).fetchone()
        action.update(total_bytes_after=total, table_bytes_after=table_bytes, index_bytes_after=index_bytes,
                      reclaimed_bytes=table['total_bytes'] - total, ran=True)

    def run_database(self, dbname):
        try:
            conn = connect(self.params, dbname=dbname, application_name='stackops-maintenance')
        except psycopg.Error as exc:
            raise MaintenanceError('cannot connect to %s: %s; check the connection options and that the server is up'
                                   % (describe_target(self.params, dbname), str(exc).strip()))
        with conn:
            self.server_version = conn.info.server_version
            self.exclusive = needs_exclusive_lock(self.params['operation'], self.params['concurrently'], self.server_version)
            if self.exclusive and not self.params['allow_exclusive_locks']:
                raise MaintenanceError(
                    'operation %s takes an ACCESS EXCLUSIVE lock that blocks the application on %s (server %s); '
                    'set %s inside a maintenance window%s' % (
                        self.params['operation'], describe_target(self.params, dbname), self.server_version,
                        setting(self.params, 'allow_exclusive_locks', True),
                        ', or use concurrently=true' if self.params['operation'] == 'reindex' else ''))
            # Sizing a table waits for its lock like any statement: without the timeouts a session holding an
            # exclusive lock would hang even a check-mode run.
            self.set_timeouts(conn)
            try:
                selected, skipped = self.discover(conn, dbname)
            except psycopg.errors.LockNotAvailable as exc:
                raise MaintenanceError(
                    'sizing the tables of %s waited longer than lock_timeout=%s: %s; another session holds an '
                    'exclusive lock (find it with stackops.runbooks.pg_connections), end it or retry later'
                    % (describe_target(self.params, dbname), self.params['lock_timeout'], str(exc).strip()))
            self.skipped.extend(dict(database=t['database'], schema=t['schema'], table=t['table'],
                                     bloat_percent=t['bloat_percent'], reason=t['reason']) for t in skipped)
            for table in selected:
                statement = self.statement(table)
                self.run_one(conn, table, statement.as_string(conn), statement)

    def run(self):
        started = time.monotonic()
        databases = self.params['databases'] or [self.params['login_db']]
        error = None
        try:
            for dbname in databases:
                self.run_database(dbname)
        except MaintenanceError as exc:
            error = str(exc)
        except psycopg.Error as exc:
            error = 'PostgreSQL error during %s on %s: %s' % (
                self.params['operation'], describe_target(self.params), str(exc).strip())
        ran = [a for a in self.actions if a.get('ran')]
        reclaimed = sum(a.get('reclaimed_bytes', 0) for a in ran)
        result = dict(
            changed=bool(ran) or (self.module.check_mode and bool(self.actions)),
            actions=self.actions, skipped_tables=self.skipped, reclaimed_bytes=reclaimed, reclaimed=human_bytes(reclaimed),
            duration_seconds=round(time.monotonic() - started, 3), deadline_reached=self.deadline_reached,
            server_version=self.server_version)
        result['summary'] = task_summary(self.params['operation'], result)
        if error:
            self.module.fail_json(msg=error, **result)
        self.module.exit_json(**result)


def argument_spec():
    spec = pg_connection_spec()
    spec.update(option_variables_spec())
    spec.update(
        operation=dict(type='str', required=True, choices=list(OPERATIONS)),
        databases=dict(type='list', elements='str', default=[]),
        schemas=dict(type='list', elements='str', default=[]),
        tables=dict(type='list', elements='str', default=[]),
        bloat_threshold=dict(type='float'),
        bloat_method=dict(type='str', choices=['auto', 'stats', 'pgstattuple'], default='auto'),
        min_dead_tuples=dict(type='int', default=0),
        min_table_bytes=dict(type='int', default=0),
        concurrently=dict(type='bool', default=True),
        allow_exclusive_locks=dict(type='bool', default=False),
        lock_timeout=dict(type='str', default='10s'),
        statement_timeout=dict(type='str', default='1h'),
        deadline=dict(type='str'),
    )
    return spec


def main():
    module = AnsibleModule(argument_spec=argument_spec(), supports_check_mode=True)
    prepare(module)
    Maintenance(module).run()


if __name__ == '__main__':
    main()
