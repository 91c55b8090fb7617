# -*- coding: utf-8 -*-
# Copyright: (c) 2026, stackops maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""PostgreSQL health checks, written once for pg_health and stack_health.

``run_pg_health(params)`` connects (optionally waiting for readiness) and runs the selected checks;
it never calls ``fail_json``, so callers decide whether a server that is not ready fails the task
(pg_health with ``wait``) or is one CRITICAL check among others (stack_health).
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import time

from ansible.module_utils.common.text.converters import to_native

from ansible_collections.stackops.runbooks.plugins.module_utils.checks import (
    CRITICAL, OK, make_check, threshold_check, validate_thresholds)
from ansible_collections.stackops.runbooks.plugins.module_utils.pg import connect, describe_target, json_safe

CHECK_NAMES = ['readiness', 'connections', 'long_queries', 'idle_in_transaction', 'blocking_locks', 'database_sizes',
               'wraparound', 'cache_hit_ratio', 'bloat']
XID_LIMIT = 2 ** 31

# Session rows never carry query text: statements can hold personal data or secrets.
_SESSION_COLUMNS = ("pid, usename AS user, datname AS database, application_name, "
                    "coalesce(wait_event_type || ':' || wait_event, '') AS wait_event")


def rows(conn, statement, params=None):
    cur = conn.execute(statement, params)
    names = [col.name for col in cur.description]
    return [dict(zip(names, row)) for row in cur.fetchall()]


def check_connections(conn, params, result):
    by_state = dict((row['state'], row['n']) for row in rows(
        conn, "SELECT coalesce(state, 'unknown') AS state, count(*)::int AS n FROM pg_stat_activity "
              "WHERE backend_type = 'client backend' GROUP BY 1"))
    settings = dict((row['name'], int(row['setting'])) for row in rows(
        conn, "SELECT name, setting FROM pg_settings WHERE name IN ('max_connections', 'superuser_reserved_connections')"))
    total = sum(by_state.values())
    max_conn = settings.get('max_connections') or 1
    used = round(100.0 * total / max_conn, 1)
    data = dict(by_state=by_state, total=total, max_connections=max_conn,
                superuser_reserved_connections=settings.get('superuser_reserved_connections'), used_percent=used)
    result['connections'] = data
    states = ', '.join('%s %d' % (state, count) for state, count in sorted(by_state.items()))
    return [threshold_check('postgres connections', used, params['connections_warning'], params['connections_critical'],
                            what='of max_connections used (%d/%d: %s)' % (total, max_conn, states or 'none'), details=data)]


def _oldest_session(conn, params, name, where, since, warning, critical, what):
    sessions = rows(conn, "SELECT %s, state, round(extract(epoch FROM now() - %s)::numeric, 1)::float AS seconds "
                          "FROM pg_stat_activity WHERE backend_type = 'client backend' AND pid <> pg_backend_pid() AND %s "
                          "ORDER BY seconds DESC NULLS LAST LIMIT 5" % (_SESSION_COLUMNS, since, where))
    label = 'postgres %s' % name
    if not sessions or sessions[0]['seconds'] is None:
        return [make_check(label, OK, '%s: none' % label, dict(sessions=[]))]
    top = sessions[0]
    check = threshold_check(label, top['seconds'], params[warning], params[critical], unit='s',
                            what='%s (pid %s, user %s, database %s)' % (what, top['pid'], top['user'], top['database']),
                            details=dict(sessions=sessions))
    return [check]


def check_long_queries(conn, params, result):
    return _oldest_session(conn, params, 'long queries', "state = 'active'", 'query_start',
                           'long_query_warning', 'long_query_critical', 'longest active statement')


def check_idle_in_transaction(conn, params, result):
    return _oldest_session(conn, params, 'idle in transaction', "state LIKE 'idle in transaction%%'", 'state_change',
                           'idle_in_transaction_warning', 'idle_in_transaction_critical', 'oldest idle-in-transaction session')


def check_blocking_locks(conn, params, result):
    blocked = rows(conn, "SELECT %s, pg_blocking_pids(pid) AS blocked_by, "
                         "round(extract(epoch FROM now() - coalesce(state_change, query_start))::numeric, 1)::float AS seconds "
                         "FROM pg_stat_activity WHERE cardinality(pg_blocking_pids(pid)) > 0 "
                         "ORDER BY seconds DESC NULLS LAST" % _SESSION_COLUMNS)
    label = 'postgres blocking locks'
    if not blocked:
        return [make_check(label, OK, '%s: no session waits on a lock' % label, dict(blocked=[]))]
    top = blocked[0]
    return [threshold_check(label, top['seconds'], params['lock_wait_warning'], params['lock_wait_critical'], unit='s',
                            what='waiting: %d blocked session(s), longest pid %s blocked by %s' % (
                                len(blocked), top['pid'], ', '.join(str(pid) for pid in top['blocked_by'])),
                            details=dict(blocked=blocked))]


def check_database_sizes(conn, params, result):
    sizes = dict((row['datname'], row['bytes']) for row in rows(
        conn, "SELECT datname, pg_database_size(datname) AS bytes FROM pg_database WHERE datallowconn ORDER BY 2 DESC"))
    result['database_sizes'] = sizes
    text = ', '.join('%s %.1f MiB' % (name, size / 1048576.0) for name, size in sizes.items())
    return [make_check('postgres database sizes', OK, 'postgres database sizes: %s' % text, dict(sizes=sizes))]


def check_wraparound(conn, params, result):
    ages = rows(conn, "SELECT datname, age(datfrozenxid)::bigint AS age FROM pg_database ORDER BY 2 DESC")
    top = ages[0]
    percent = round(100.0 * top['age'] / XID_LIMIT, 2)
    return [threshold_check('postgres wraparound', percent, params['wraparound_warning'], params['wraparound_critical'],
                            what='of the transaction ID space used (oldest: database %s, age %d)' % (top['datname'], top['age']),
                            details=dict(ages=dict((row['datname'], row['age']) for row in ages)))]


def check_cache_hit_ratio(conn, params, result):
    row = rows(conn, "SELECT coalesce(sum(blks_hit), 0)::bigint AS hit, coalesce(sum(blks_read), 0)::bigint AS read FROM pg_stat_database")[0]
    accesses = row['hit'] + row['read']
    label = 'postgres cache hit ratio'
    if accesses < params['cache_hit_min_blocks']:
        return [make_check(label, OK, '%s: not judged yet, only %d block accesses (needs %d)' % (
            label, accesses, params['cache_hit_min_blocks']), dict(row))]
    ratio = round(100.0 * row['hit'] / accesses, 2)
    return [threshold_check(label, ratio, params['cache_hit_warning'], params['cache_hit_critical'], higher_is_worse=False,
                            what='of block reads served from shared buffers', details=dict(row))]


def check_bloat(conn, params, result):
    tables = rows(conn, "SELECT schemaname, relname, n_live_tup::bigint AS live, n_dead_tup::bigint AS dead, "
                        "round(100.0 * n_dead_tup / greatest(n_live_tup + n_dead_tup, 1), 1)::float AS dead_percent "
                        "FROM pg_stat_user_tables WHERE n_live_tup + n_dead_tup >= %s ORDER BY dead_percent DESC LIMIT 10",
                  [params['bloat_min_rows']])
    label = 'postgres bloat'
    if not tables:
        return [make_check(label, OK, '%s: no table with %d+ rows in %s' % (label, params['bloat_min_rows'], params['login_db']),
                           dict(tables=[]))]
    top = tables[0]
    return [threshold_check(label, top['dead_percent'], params['bloat_warning'], params['bloat_critical'],
                            what='dead tuples in %s.%s; VACUUM it or check autovacuum' % (top['schemaname'], top['relname']),
                            details=dict(tables=tables))]


CHECKS = dict(
    connections=check_connections,
    long_queries=check_long_queries,
    idle_in_transaction=check_idle_in_transaction,
    blocking_locks=check_blocking_locks,
    database_sizes=check_database_sizes,
    wraparound=check_wraparound,
    cache_hit_ratio=check_cache_hit_ratio,
    bloat=check_bloat,
)

THRESHOLD_PAIRS = [('connections', True), ('long_query', True), ('idle_in_transaction', True), ('lock_wait', True),
                   ('wraparound', True), ('cache_hit', False), ('bloat', True)]


def try_connect(params):
    """Connection and readiness facts, or the error text."""
    try:
        conn = connect(params, application_name='stackops-health')
    except Exception as exc:  # pylint: disable=broad-except
        return None, None, ' '.join(to_native(exc).split())
    try:
        conn.execute('SELECT 1').fetchone()
        in_recovery = conn.execute('SELECT pg_is_in_recovery()').fetchone()[0]
        version = conn.execute('SHOW server_version').fetchone()[0]
    except Exception as exc:  # pylint: disable=broad-except
        conn.close()
        return None, None, ' '.join(to_native(exc).split())
    return conn, dict(server_version=version, in_recovery=in_recovery), None


def pg_health_spec():
    """Argument spec of the checks and thresholds (without the connection options of pg.pg_connection_spec())."""
    return dict(
        checks=dict(type='list', elements='str', choices=CHECK_NAMES, default=['readiness', 'connections']),
        connections_warning=dict(type='float', default=80),
        connections_critical=dict(type='float', default=95),
        long_query_warning=dict(type='float', default=60),
        long_query_critical=dict(type='float', default=300),
        idle_in_transaction_warning=dict(type='float', default=60),
        idle_in_transaction_critical=dict(type='float', default=600),
        lock_wait_warning=dict(type='float', default=30),
        lock_wait_critical=dict(type='float', default=300),
        wraparound_warning=dict(type='float', default=50),
        wraparound_critical=dict(type='float', default=75),
        cache_hit_warning=dict(type='float', default=90),
        cache_hit_critical=dict(type='float', default=80),
        cache_hit_min_blocks=dict(type='int', default=10000),
        bloat_warning=dict(type='float', default=20),
        bloat_critical=dict(type='float', default=50),
        bloat_min_rows=dict(type='int', default=10000),
        wait=dict(type='bool', default=False),
        wait_timeout=dict(type='float', default=60),
        interval=dict(type='float', default=1),
    )


def threshold_problem(params):
    """Error text for the first inverted warning/critical pair, naming the options to fix; None when all are sane."""
    for prefix, higher in THRESHOLD_PAIRS:
        problem = validate_thresholds(params[prefix + '_warning'], params[prefix + '_critical'], prefix, higher_is_worse=higher)
        if problem:
            return problem + '; fix %s_warning/%s_critical' % (prefix, prefix)
    return None


def run_pg_health(params):
    """Readiness (waiting when ``params['wait']``) and the selected checks.

    Returns ``(result, failure)``: the module result (ready, attempts, elapsed, checks, ...) and, when
    ``wait`` was requested and the server never became ready, the failure message; else None.
    The password must already be resolved into ``params['login_password']`` (pg.prepare()).
    """
    target = describe_target(params)
    start = time.monotonic()
    deadline = start + max(0.0, params['wait_timeout'])
    attempts = 0
    while True:
        attempts += 1
        conn, facts, error = try_connect(params)
        if conn or not params['wait'] or time.monotonic() >= deadline:
            break
        time.sleep(max(0.0, min(params['interval'], deadline - time.monotonic())))
    elapsed = round(time.monotonic() - start, 3)

    if conn is None:
        message = 'postgres readiness: cannot connect to %s: %s; check that the server runs (docker compose ps) and the credentials' % (
            target, error)
        check = make_check('postgres readiness', CRITICAL, message, dict(target=target, error=error, attempts=attempts, elapsed=elapsed))
        result = dict(changed=False, ready=False, attempts=attempts, elapsed=elapsed, checks=[check])
        failure = '%s (waited %ss, %d attempts)' % (check['message'], elapsed, attempts) if params['wait'] else None
        return result, failure

    result = dict(changed=False, ready=True, attempts=attempts, elapsed=elapsed, **facts)
    checks = [make_check('postgres readiness', OK, 'postgres readiness: %s answers, PostgreSQL %s%s' % (
        target, facts['server_version'], ' (standby)' if facts['in_recovery'] else ''), dict(facts, target=target, elapsed=elapsed))]
    try:
        for name in params['checks']:
            if name == 'readiness':
                continue
            try:
                checks.extend(CHECKS[name](conn, params, result))
            except Exception as exc:  # pylint: disable=broad-except
                # One failing query (permissions, old server) must not hide the other checks.
                checks.append(make_check('postgres %s' % name.replace('_', ' '), CRITICAL, 'postgres %s: query failed on %s: %s' % (
                    name.replace('_', ' '), target, to_native(exc).strip()), dict(error=to_native(exc))))
    finally:
        conn.close()
    result['checks'] = checks
    # Names from a SQL_ASCII database may hold bytes that are not UTF-8; stack_health returns these checks too.
    return json_safe(result), None
