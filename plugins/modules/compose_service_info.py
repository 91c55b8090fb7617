#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, stackops maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function
__metaclass__ = type

DOCUMENTATION = r'''
---
module: compose_service_info
short_description: Report, or wait for, the state and health of a compose project's services
version_added: 0.1.0
description:
  - For every service of a Docker Compose project reports its containers with state, health,
    restart count, image id and digests, start time and uptime, plus one health check per service.
  - Uses C(docker compose ps --all --format json) and C(docker inspect).
  - Optionally waits until the selected services have the expected number of running or healthy containers.
  - Read-only; never changes anything.
author:
  - stackops maintainers (@stackops)
options:
  services:
    description: Services to report on; all services the compose file defines when empty.
    type: list
    elements: str
    default: []
  replicas:
    description:
      - Containers each selected service should have ready.
      - By default the number of containers compose created for the service, at least one.
    type: int
  wait:
    description: Wait until every selected service has O(replicas) containers in the O(wait_for) condition.
    type: bool
    default: false
  wait_for:
    description:
      - V(healthy) needs running containers whose healthcheck passes (or that have none).
      - V(running) only needs running containers.
    type: str
    choices: [healthy, running]
    default: healthy
  wait_timeout:
    description: Seconds to wait before failing.
    type: float
    default: 120
  interval:
    description: Seconds between two looks while waiting.
    type: float
    default: 2
  restart_warning:
    description: A service whose containers restarted this many times in total is reported as WARNING; V(0) disables.
    type: int
    default: 3
  logs_tail:
    description: Also return the last this many log lines of every selected service in RV(logs); V(0) returns none.
    type: int
    default: 0
  logs_since:
    description: With O(logs_tail), only log lines newer than this (C(docker compose logs --since), for example V(30m)).
    type: str
  logs_timestamps:
    description: With O(logs_tail), prefix every log line with its timestamp.
    type: bool
    default: false
  disk_paths:
    description:
      - Paths inside the containers whose filesystems are measured (C(df -Pk) in the first running container of
        each selected service), for example a database's data directory; the result is in RV(disks).
      - Empty measures nothing.
    type: list
    elements: str
    default: []
extends_documentation_fragment:
  - stackops.runbooks.compose
  - stackops.runbooks.attributes
  - stackops.runbooks.attributes.info_module
  - stackops.runbooks.attributes.actiongroup_compose
notes:
  - Supports check mode; it is read-only, so check mode behaves like a normal run.
seealso:
  - module: stackops.runbooks.stack_http_info
'''

EXAMPLES = r'''
- name: Report the state of every service
  stackops.runbooks.compose_service_info:
    project_dir: /srv/app
    project_name: app
  register: status

- name: Free space of the database's data directory, inside its container
  stackops.runbooks.compose_service_info:
    project_dir: /srv/app
    services: [db]
    disk_paths: [/var/lib/postgresql/data]
  register: db_disk

- name: Wait until three api containers are healthy
  stackops.runbooks.compose_service_info:
    project_dir: /srv/app
    services: [api]
    replicas: 3
    wait: true
    wait_timeout: 180
'''

RETURN = r'''
services:
  description: Per service, its containers and a summary (total, running, healthy, expected, restart_count, states, health, check).
  returned: always
  type: dict
  sample:
    api:
      total: 1
      running: 1
      healthy: 1
      expected: 1
      restart_count: 0
      states: [running]
      health: [healthy]
      containers:
        - name: app-api-1
          state: running
          health: healthy
          restart_count: 0
          image: app/api:1
          image_id: sha256:84b9...
          image_digests: []
          started_at: '2026-11-23T14:13:48.057879697Z'
          uptime_seconds: 311.2
checks:
  description: One health check per service (name, severity, message, details).
  returned: always
  type: list
  elements: dict
ready:
  description: Whether every selected service met the O(wait_for) condition with the expected number of containers.
  returned: always
  type: bool
not_ready:
  description: Services that did not meet it.
  returned: always
  type: list
  elements: str
elapsed:
  description: Seconds spent, including waiting.
  returned: always
  type: float
tiers:
  description:
    - Start order derived from C(depends_on) - a list of tiers, each a list of services whose dependencies are in earlier tiers.
    - Covers every service of the project, not only O(services).
  returned: always
  type: list
  elements: list
  sample: [[postgres], [api], [frontend]]
logs:
  description: Service name to its last O(logs_tail) log lines.
  returned: when O(logs_tail) > 0
  type: dict
disks:
  description:
    - One entry per selected service and O(disk_paths) path - service, container, path, total_bytes, used_bytes,
      free_bytes, used_percent; or service, path and error when it could not be measured (no running container).
  returned: when O(disk_paths) is not empty
  type: list
  elements: dict
'''

import time

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.stackops.runbooks.plugins.module_utils.compose import (
    compose_argument_spec, run_compose, service_logs, services_snapshot)
from ansible_collections.stackops.runbooks.plugins.module_utils.health import select_services


def snapshot(module, params, wanted):
    """Status of the wanted services right now."""
    return services_snapshot(module, params, wanted, replicas=params['replicas'], restart_warning=params['restart_warning'])


def container_disks(module, params, name, summary, paths):
    """Filesystem usage of paths inside the first running container of a service (df -Pk, POSIX output)."""
    running = [item for item in summary['containers'] if item.get('state') == 'running']
    if not running:
        return [dict(service=name, path=path, error='no running container of service %s' % name) for path in paths]
    index = running[0].get('number') or 1
    rc, out, err = run_compose(module, params, ['exec', '-T', '--index', str(index), name, 'df', '-Pk'] + list(paths), check_rc=False)
    rows = [line.split() for line in out.splitlines()[1:] if line.strip()]
    disks = []
    for path, row in zip(paths, rows if len(rows) == len(paths) else [None] * len(paths)):
        if rc != 0 or not row or len(row) < 6:
            disks.append(dict(service=name, container=running[0]['name'], path=path,
                              error='df -Pk %s failed in %s (rc=%s): %s' % (path, running[0]['name'], rc, (err or out).strip())))
            continue
        total, used, free = (int(value) * 1024 for value in row[-5:-2])
        disks.append(dict(service=name, container=running[0]['name'], path=path, total_bytes=total, used_bytes=used, free_bytes=free,
                          used_percent=round(100.0 * used / total, 1) if total else 0.0))
    return disks


def meets(summary, wait_for):
    return (summary['running'] if wait_for == 'running' else summary['healthy']) >= summary['expected']


def main():
    spec = compose_argument_spec()
    spec.update(
        services=dict(type='list', elements='str', default=[]),
        replicas=dict(type='int'),
        wait=dict(type='bool', default=False),
        wait_for=dict(type='str', choices=['healthy', 'running'], default='healthy'),
        wait_timeout=dict(type='float', default=120),
        interval=dict(type='float', default=2),
        restart_warning=dict(type='int', default=3),
        logs_tail=dict(type='int', default=0),
        logs_since=dict(type='str'),
        logs_timestamps=dict(type='bool', default=False),
        disk_paths=dict(type='list', elements='str', default=[]),
    )
    module = AnsibleModule(argument_spec=spec, supports_check_mode=True)
    params = module.params
    if params['replicas'] is not None and params['replicas'] < 0:
        module.fail_json(msg='replicas must be 0 or more, got %s' % params['replicas'])

    wanted, tiers = select_services(module, params, params['services'])

    start = time.monotonic()
    deadline = start + max(0.0, params['wait_timeout'])
    while True:
        services = snapshot(module, params, wanted)
        not_ready = [name for name in wanted if not meets(services[name], params['wait_for'])]
        if not params['wait'] or not not_ready or time.monotonic() >= deadline:
            break
        time.sleep(max(0.0, min(params['interval'], deadline - time.monotonic())))

    result = dict(changed=False, services=services, checks=[services[name]['check'] for name in wanted],
                  ready=not not_ready, not_ready=not_ready, elapsed=round(time.monotonic() - start, 3), tiers=tiers)
    if params['logs_tail'] > 0:
        result['logs'] = dict((name, service_logs(module, params, name, params['logs_tail'], since=params['logs_since'],
                                                  timestamps=params['logs_timestamps'])) for name in wanted)
    if params['disk_paths']:
        result['disks'] = [disk for name in wanted for disk in container_disks(module, params, name, services[name], params['disk_paths'])]
    if params['wait'] and not_ready:
        module.fail_json(msg='compose project %s: %s not %s after %ss: %s; see docker compose logs %s' % (
            params.get('project_name') or params.get('project_dir'), ', '.join(not_ready), params['wait_for'], result['elapsed'],
            '; '.join(services[name]['check']['message'] for name in not_ready), ' '.join(not_ready)), **result)
    module.exit_json(**result)


if __name__ == '__main__':
    main()
