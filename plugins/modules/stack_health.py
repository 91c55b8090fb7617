#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, stackops maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function
__metaclass__ = type

DOCUMENTATION = r'''
---
module: stack_health
short_description: Check a whole compose stack in one module run and aggregate one health report
version_added: 0.2.0
description:
  - Runs the checks of M(stackops.runbooks.compose_service_info), M(stackops.runbooks.stack_http_info) (one probe per
    entry of O(urls)), M(stackops.runbooks.pg_health_info) and M(stackops.runbooks.host_resources_info) in one
    invocation, each group in its own thread, and aggregates them like M(stackops.runbooks.stack_health_report).
  - One module run per host instead of one per check group keeps the per-host cost of a fleet-wide
    health run low; the check logic is the same code the single-purpose modules use.
  - A group that cannot run at all (compose file invalid, Docker down, psycopg missing, unreadable password
    file, invalid options) becomes one CRITICAL check named after the group (V(compose), V(http <name>),
    V(postgres), V(host)) whose message is the error; the other groups still report.
  - Read-only, apart from the optional report file.
author:
  - stackops maintainers (@stackops)
requirements:
  - psycopg >= 3 on the managed host for the V(postgres) group
options:
  checks:
    description: Check groups to run.
    type: list
    elements: str
    choices: [compose, http, postgres, host]
    default: [compose, http, postgres, host]
  services:
    description: Compose services to check (group V(compose)); all services the compose file defines when empty.
    type: list
    elements: str
    default: []
  restart_warning:
    description: Total container restarts of a service that is a WARNING (group V(compose)); V(0) disables.
    type: int
    default: 3
  urls:
    description:
      - URLs to probe (group V(http)), each a dict of M(stackops.runbooks.stack_http_info) options, at least C(url).
      - C(status) is accepted for C(status_code) and may be one code or a list.
      - Keys that are not stack_http_info options (such as the startup role's C(after)) are ignored, because
        the URL list of the inventory contract is shared by several roles.
      - Options not given come from O(http), then from the defaults of stack_http_info, except that C(wait) defaults to
        V(false) (one probe) and C(fail_on_unhealthy) is always V(false).
    type: list
    elements: dict
    default: []
  http:
    description:
      - M(stackops.runbooks.stack_http_info) options applied to every entry of O(urls), for example
        C(timeout), C(wait), C(wait_timeout), C(latency_warning_ms), C(validate_certs).
    type: dict
    default: {}
  postgres:
    description:
      - M(stackops.runbooks.pg_health_info) options except the connection ones (group V(postgres)), with the same
        names and defaults, for example C(checks), C(connections_warning), C(long_query_critical).
      - The connection comes from the C(login_*) options.
    type: dict
    default: {}
  host:
    description:
      - M(stackops.runbooks.host_resources_info) options (group V(host)), with the same names and defaults, for example
        C(paths), C(disk_warning), C(load_critical), C(docker).
    type: dict
    default: {}
  wait_timeout:
    description:
      - Seconds the V(compose) group waits, looking every quarter second, until every selected service has its
        containers healthy (running, for services without a healthcheck) before it reports; it stops waiting
        early when a container exits, restarts or turns unhealthy. V(0) looks once.
    type: float
    default: 0
  stop_on_critical:
    description:
      - Report as soon as one group has a CRITICAL check; groups still running are reported CRITICAL as not
        finished. For gates (the startup role) that must fail fast instead of waiting out the other groups' timeouts.
    type: bool
    default: false
  fail_on_unhealthy:
    description:
      - Fail the task when the report is failed under O(fail_on); the result still carries the report.
      - The health role sets V(false), publishes the report and fails afterwards.
    type: bool
    default: true
extends_documentation_fragment:
  - stackops.runbooks.compose
  - stackops.runbooks.postgres
  - stackops.runbooks.health_report
  - stackops.runbooks.attributes
  - stackops.runbooks.attributes.changes_state
  - stackops.runbooks.attributes.actiongroup_compose_postgresql
notes:
  - Supports check mode; the checks run (they only read), the report file is not written.
  - Belongs to the C(stackops.runbooks.compose) and C(stackops.runbooks.postgresql) action groups, so the
    compose project and connection options can be set once with C(module_defaults).
seealso:
  - module: stackops.runbooks.stack_health_report
  - module: stackops.runbooks.compose_service_info
  - module: stackops.runbooks.stack_http_info
  - module: stackops.runbooks.pg_health_info
  - module: stackops.runbooks.host_resources_info
'''

EXAMPLES = r'''
- name: Check the whole stack and keep the report
  stackops.runbooks.stack_health:
    project_dir: /srv/app
    project_name: app
    login_user: app
    login_password_file: /srv/app/secrets/db_password
    login_db: appdb
    urls:
      - name: api
        url: http://127.0.0.1:8080/health
      - name: api-db
        url: http://127.0.0.1:8080/api/v1/db/health
        json:
          db.connected: true
    postgres:
      checks: [readiness, connections, long_queries, blocking_locks]
    host:
      paths: [/, /var/backups]
      docker: false
    path: /var/log/stackops/health.json
  register: health

- name: Report only, services and database
  stackops.runbooks.stack_health:
    project_dir: /srv/app
    checks: [compose, postgres]
    fail_on: never
'''

RETURN = r'''
report:
  description:
    - The report - severity, counts, checks, critical and warnings (messages), fail_on, failed, fail_message,
      generated_at (UTC ISO 8601) and the O(metadata) keys; the shape of M(stackops.runbooks.stack_health_report).
  returned: always
  type: dict
summary:
  description: Readable lines, worst check first.
  returned: always
  type: list
  elements: str
groups:
  description: One entry per group run - name (C(compose), C(http <name>), C(postgres), C(host)), elapsed seconds, checks, error (null when it ran).
  returned: always
  type: list
  elements: dict
path:
  description: Where the report was written.
  returned: when O(path) is set
  type: str
'''

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.stackops.runbooks.plugins.module_utils.checks import FAIL_ON_CHOICES
from ansible_collections.stackops.runbooks.plugins.module_utils.compose import compose_argument_spec, services_snapshot, wait_services
from ansible_collections.stackops.runbooks.plugins.module_utils.health import (
    GroupError, GroupModule, report_result, run_groups, select_services, validate_options)
from ansible_collections.stackops.runbooks.plugins.module_utils.pg import pg_connection_spec

GROUPS = ['compose', 'http', 'postgres', 'host']
# One probe per URL unless asked to wait; an unhealthy URL is a check result, never a module failure.
HTTP_DEFAULTS = dict(wait=False)


def compose_checks(module, params):
    group = GroupModule(module, dict((key, params[key]) for key in compose_argument_spec()))
    wanted, _tiers = select_services(group, group.params, params['services'])
    if params['wait_timeout'] > 0:
        # Only the wait; the snapshot below, with the restart warning, is what gets reported.
        wait_services(group, group.params, wanted, timeout=params['wait_timeout'], interval=0.25)
    services = services_snapshot(group, group.params, wanted, restart_warning=params['restart_warning'])
    return [services[name]['check'] for name in wanted]


def http_checks(entry, defaults):
    # Imported per group so a run without the group does not pay for loading it.
    from ansible_collections.stackops.runbooks.plugins.module_utils.health_http import (
        http_health_spec, options_problem, run_http_health)
    spec = http_health_spec()
    options = dict(HTTP_DEFAULTS)
    options.update(defaults)
    # The URL list is shared with other roles, which add their own keys (startup's after): only probe options count.
    options.update((key, value) for key, value in entry.items() if key in spec or key == 'status')
    if 'status' in options:
        status = options.pop('status')
        options['status_code'] = status if isinstance(status, list) else [status]
    options['fail_on_unhealthy'] = False
    params = validate_options(spec, options, 'urls entry')
    problem = options_problem(params)
    if problem:
        raise GroupError(problem)
    return run_http_health(params)['checks']


def postgres_checks(module, params):
    from ansible_collections.stackops.runbooks.plugins.module_utils.health_pg import pg_health_spec, run_pg_health, threshold_problem
    from ansible_collections.stackops.runbooks.plugins.module_utils.pg import prepare
    options = validate_options(pg_health_spec(), params['postgres'], 'postgres')
    problem = threshold_problem(options)
    if problem:
        raise GroupError(problem)
    options.update((key, params[key]) for key in pg_connection_spec())
    group = GroupModule(module, options)
    prepare(group)  # psycopg present, password file read (and its content added to no_log_values)
    result, _failure = run_pg_health(group.params)
    return result['checks']


def host_checks(module, params):
    from ansible_collections.stackops.runbooks.plugins.module_utils.health_host import host_resources_spec, run_host_resources, threshold_problem
    options = validate_options(host_resources_spec(), params['host'], 'host')
    problem = threshold_problem(options)
    if problem:
        raise GroupError(problem)
    return run_host_resources(GroupModule(module, options), options)['checks']


def url_label(entry):
    if not isinstance(entry, dict):
        return 'http %s' % (entry,)
    return 'http %s' % (entry.get('name') or entry.get('url') or 'unnamed URL')


def plan(module):
    """[(group label, callable returning checks)] in report order: compose, http per URL, postgres, host."""
    params = module.params
    groups = []
    if 'compose' in params['checks']:
        groups.append(('compose', lambda: compose_checks(module, params)))
    if 'http' in params['checks']:
        for entry in params['urls']:
            groups.append((url_label(entry), lambda entry=entry: http_checks(entry, params['http'])))
    if 'postgres' in params['checks']:
        groups.append(('postgres', lambda: postgres_checks(module, params)))
    if 'host' in params['checks']:
        groups.append(('host', lambda: host_checks(module, params)))
    return groups


def main():
    spec = compose_argument_spec()
    spec.update(pg_connection_spec())
    spec.update(
        checks=dict(type='list', elements='str', choices=GROUPS, default=list(GROUPS)),
        services=dict(type='list', elements='str', default=[]),
        restart_warning=dict(type='int', default=3),
        wait_timeout=dict(type='float', default=0),
        stop_on_critical=dict(type='bool', default=False),
        urls=dict(type='list', elements='dict', default=[]),
        http=dict(type='dict', default={}),
        postgres=dict(type='dict', default={}),
        host=dict(type='dict', default={}),
        fail_on=dict(type='str', choices=list(FAIL_ON_CHOICES), default='critical'),
        fail_on_unhealthy=dict(type='bool', default=True),
        path=dict(type='path'),
        metadata=dict(type='dict', default={}),
    )
    module = AnsibleModule(argument_spec=spec, supports_check_mode=True)
    params = module.params

    outcomes = run_groups(plan(module), stop_on_critical=params['stop_on_critical'])
    result = report_result(module, [check for outcome in outcomes for check in outcome['checks']], params)
    result['groups'] = [dict(name=outcome['name'], elapsed=outcome['elapsed'], checks=len(outcome['checks']), error=outcome['error'])
                        for outcome in outcomes]
    if result['report']['failed'] and params['fail_on_unhealthy']:
        module.fail_json(msg='%s; see report.checks, or set fail_on=never to report only' % result['report']['fail_message'], **result)
    module.exit_json(**result)


if __name__ == '__main__':
    main()
