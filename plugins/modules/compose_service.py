#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, stackops maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function
__metaclass__ = type

DOCUMENTATION = r'''
---
module: compose_service
short_description: Bring compose services up, start, stop, restart or recreate them, and verify their health
version_added: 0.1.0
description:
  - Runs C(docker compose up/start/stop/restart) for the selected services and, unless O(wait=false),
    waits until every one has its containers running and healthy.
  - When a service does not get healthy it fails naming the service, with its state and its last log lines.
    Containers that exit, crash-loop or turn unhealthy end the wait at once instead of at the deadline.
  - Reports C(changed) only when containers were created, replaced, started or stopped; V(up) on a
    running, up-to-date service changes nothing.
author:
  - stackops maintainers (@stackops)
options:
  services:
    description: Services to act on; all services when empty.
    type: list
    elements: str
    default: []
  state:
    description:
      - V(up) creates missing containers and recreates those whose configuration or image changed (C(docker compose up -d)).
      - V(started) starts existing stopped containers (C(docker compose start)).
      - V(stopped) stops them gracefully within O(stop_timeout) (C(docker compose stop)).
      - V(restarted) restarts the containers in place (C(docker compose restart)).
      - V(recreated) is the hard restart - stop, remove and create fresh containers (C(docker compose up -d --force-recreate)).
      - V(paused) freezes the running containers (C(docker compose pause)); connections stay open but nothing runs.
      - V(unpaused) lets paused containers run again (C(docker compose unpause)) and waits for their health.
    type: str
    choices: [up, started, stopped, restarted, recreated, paused, unpaused]
    default: up
  no_deps:
    description: Do not also start the services these depend on (C(--no-deps)); startup tiers use it to go one tier at a time.
    type: bool
    default: false
  stop_timeout:
    description: Seconds a container gets to stop after SIGTERM before it is killed; the compose file's stop_grace_period when unset.
    type: int
  env:
    description:
      - Extra environment for compose's variable interpolation, for example C(API_TAG) set to an image tag.
      - Overrides values from O(env_files) for this run only.
    type: dict
    default: {}
  wait:
    description: Wait until the services are healthy (running for services without a healthcheck); not for V(stopped) and V(paused).
    type: bool
    default: true
  wait_timeout:
    description: Seconds to wait for health.
    type: float
    default: 180
  interval:
    description: Seconds between two looks while waiting.
    type: float
    default: 1
  logs_tail:
    description: Log lines of a failing service to include in the failure message.
    type: int
    default: 30
extends_documentation_fragment:
  - stackops.runbooks.compose
  - stackops.runbooks.attributes
  - stackops.runbooks.attributes.changes_state
  - stackops.runbooks.attributes.actiongroup_compose
notes:
  - Supports check mode; V(up) predicts its changes from the compose config hashes and container states.
seealso:
  - module: stackops.runbooks.compose_service_info
  - module: stackops.runbooks.compose_rolling
'''

EXAMPLES = r'''
- name: Start the database tier and wait for it
  stackops.runbooks.compose_service:
    project_dir: /srv/app
    services: [postgres]
    no_deps: true

- name: Hard restart of the api with a short stop timeout
  stackops.runbooks.compose_service:
    project_dir: /srv/app
    services: [api]
    state: recreated
    stop_timeout: 10
'''

RETURN = r'''
services:
  description: Per service, the state after the action (as returned by M(stackops.runbooks.compose_service_info)).
  returned: always
  type: dict
changed_services:
  description: Services whose containers were created, replaced, started, stopped or restarted (predicted in check mode).
  returned: always
  type: list
  elements: str
elapsed:
  description: Seconds for the action and the health wait.
  returned: always
  type: float
wait_seconds:
  description: Seconds spent waiting for health after the action.
  returned: always
  type: float
'''

import time

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.stackops.runbooks.plugins.module_utils.compose import (
    compose_argument_spec, compose_services, config_hashes, container_fingerprint, failure_report, project_label, run_compose,
    services_snapshot, wait_services)


def predict(params, services, before, hashes):
    """Services the action would touch, for check mode and for honest change reporting."""
    state = params['state']
    if state in ('restarted', 'recreated'):
        return [name for name in services if before[name]['total'] or state == 'recreated']
    if state in ('stopped', 'paused'):
        return [name for name in services if before[name]['running']]
    if state == 'unpaused':
        return [name for name in services if any(item.get('state') == 'paused' for item in before[name]['containers'])]
    if state == 'started':
        return [name for name in services if before[name]['running'] < before[name]['total']]
    touched = []
    for name in services:
        containers = before[name]['containers']
        if not containers or any(item.get('state') != 'running' or item.get('config_hash') != hashes.get(name) for item in containers):
            touched.append(name)
    return touched


def fail_on_unknown(module, params, defined):
    unknown = [name for name in params['services'] if name not in defined]
    if unknown:
        module.fail_json(msg='service(s) %s not defined in compose project %s (defined: %s)' % (
            ', '.join(unknown), project_label(params), ', '.join(defined)))


def cold_start(module, params):
    """(services, before, touched) when state=up must create containers anyway, else (None, None, None).

    A named service without any container is created by ``up`` whatever its config hash, and ``up`` leaves
    up-to-date containers alone, so the compose call that resolves the project and its config hashes is
    skipped; what changed is read from the containers before and after. Only outside check mode and with a
    project name (the containers are then found by their labels without a compose call).
    """
    if params['state'] != 'up' or module.check_mode or not params['services'] or not params.get('project_name'):
        return None, None, None
    services = list(params['services'])
    before = services_snapshot(module, params, services, restart_warning=0, fast=True, images=False)
    if all(before[name]['total'] for name in services):
        return None, None, None
    return services, before, services


def main():
    spec = compose_argument_spec()
    spec.update(
        services=dict(type='list', elements='str', default=[]),
        state=dict(type='str', choices=['up', 'started', 'stopped', 'restarted', 'recreated', 'paused', 'unpaused'], default='up'),
        no_deps=dict(type='bool', default=False),
        stop_timeout=dict(type='int'),
        env=dict(type='dict', default={}),
        wait=dict(type='bool', default=True),
        wait_timeout=dict(type='float', default=180),
        interval=dict(type='float', default=1),
        logs_tail=dict(type='int', default=30),
    )
    module = AnsibleModule(argument_spec=spec, supports_check_mode=True)
    params = module.params
    params['env'] = dict((key, str(value)) for key, value in params['env'].items())

    state = params['state']
    start = time.monotonic()
    services, before, touched = cold_start(module, params)
    if services is None:
        # One compose call resolves the project: the services it defines and the config hash each one's containers
        # must carry (a differing hash means up recreates them).
        hashes = config_hashes(module, params, environ_update=params['env'])
        fail_on_unknown(module, params, list(hashes))
        services = params['services'] or list(hashes)
        before = services_snapshot(module, params, services, restart_warning=0, fast=True, images=module.check_mode)
        touched = predict(params, services, before, hashes)
    if module.check_mode:
        module.exit_json(changed=bool(touched), changed_services=touched, services=before, elapsed=0.0, wait_seconds=0.0)

    timeout_args = ['-t', str(params['stop_timeout'])] if params['stop_timeout'] is not None else []
    if state == 'up':
        args = ['up', '-d'] + (['--no-deps'] if params['no_deps'] else []) + services
    elif state == 'recreated':
        args = ['up', '-d', '--force-recreate'] + timeout_args + (['--no-deps'] if params['no_deps'] else []) + services
    elif state == 'started':
        missing = [name for name in services if not before[name]['total']]
        if missing:
            module.fail_json(msg='service(s) %s of %s have no containers to start; use state=up to create them' % (
                ', '.join(missing), project_label(params)))
        args = ['start'] + services
    elif state == 'stopped':
        args = ['stop'] + timeout_args + services
    elif state in ('paused', 'unpaused'):
        # Only the services that have something to (un)pause: compose fails on a service with nothing in that state.
        args = [state[:-1]] + touched
    else:
        args = ['restart'] + timeout_args + services
    if touched or state in ('restarted', 'recreated'):
        rc, out, err = run_compose(module, params, args, check_rc=False, environ_update=params['env'])
        if rc != 0:
            # The cold start path did not resolve the project first: name unknown services as the other path does.
            fail_on_unknown(module, params, compose_services(module, params))
            module.fail_json(msg='docker compose %s failed (rc=%s) for project %s: %s' % (
                ' '.join(args[:2]), rc, project_label(params), err.strip() or out.strip()), rc=rc, stdout=out, stderr=err)

    wait_seconds = 0.0
    after = None
    if params['wait'] and state not in ('stopped', 'paused'):
        baseline = dict((name, before[name]['restart_count']) for name in services)
        # A paused container fails its healthchecks (nothing runs to answer them), so right after unpause it can
        # still read unhealthy from the pause: wait for its next check instead of failing fast on that.
        after, not_ready, wait_seconds, reason = wait_services(
            module, params, services, timeout=params['wait_timeout'], interval=params['interval'], baseline_restarts=baseline,
            fail_fast=state != 'unpaused')
        if not_ready:
            elapsed = round(time.monotonic() - start, 3)
            module.fail_json(
                msg='service %s of %s did not get healthy after state=%s: %s\n%s' % (
                    ', '.join(not_ready), project_label(params), state, reason,
                    failure_report(module, params, after, not_ready, params['logs_tail'])),
                failed_services=not_ready, services=after, changed=True, elapsed=elapsed, wait_seconds=wait_seconds)
    if after is None:
        after = services_snapshot(module, params, services, restart_warning=0, fast=True)
    changed_services = [name for name in services
                        if container_fingerprint({name: before[name]}) != container_fingerprint({name: after[name]})]
    if state in ('restarted', 'recreated'):
        changed_services = list(services)
    module.exit_json(changed=bool(changed_services), changed_services=changed_services, services=after,
                     elapsed=round(time.monotonic() - start, 3), wait_seconds=wait_seconds)


if __name__ == '__main__':
    main()
