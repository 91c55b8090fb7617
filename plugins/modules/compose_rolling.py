#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, stackops maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function
__metaclass__ = type

DOCUMENTATION = r'''
---
module: compose_rolling
short_description: Rolling restart or rolling update of a compose service, one container at a time
version_added: 0.1.0
description:
  - Compose has no rolling restart. This module replaces the containers of one service one at a time -
    it adds a fresh container (C(docker compose up -d --no-deps --no-recreate --scale SERVICE=N+1)),
    waits until that container is healthy, gives the load balancer O(drain_seconds) to pick it up,
    then stops and removes one old container. The service never has fewer than N healthy containers.
  - Works for a single container too (it briefly runs two), as long as the service publishes no fixed host port.
  - With O(action=update), new containers are created with O(env) applied to compose's variable
    interpolation (for example a new image tag). If a new container does not get healthy, it is removed and,
    with O(rollback=true), containers already replaced are rolled back to the previous configuration the same way.
  - Needs a load balancer that resolves the service per request (Docker DNS) and retries idempotent
    requests on connection errors, like the demo frontend's nginx.
author:
  - stackops maintainers (@stackops)
options:
  service:
    description: The service to roll.
    type: str
    required: true
  action:
    description:
      - V(restart) replaces every container with a fresh one of the same configuration.
      - V(update) replaces them with containers built from the configuration with O(env) applied.
    type: str
    choices: [restart, update]
    default: restart
  env:
    description:
      - Variables for compose interpolation used for the new containers with O(action=update), for example C(API_TAG) set to a new image tag.
      - They are not persisted; also put them in the env file, or a later C(docker compose up) reverts the update.
    type: dict
    default: {}
  pull:
    description:
      - Pull the service's image first (C(docker compose pull SERVICE)), so the new containers run the newest image
        behind its reference - a rolling update to a moved tag.
    type: bool
    default: false
  wait_timeout:
    description: Seconds each new container gets to become healthy.
    type: float
    default: 120
  interval:
    description: Seconds between two looks at a new container.
    type: float
    default: 1
  drain_seconds:
    description: Seconds between a new container becoming healthy and stopping an old one, so DNS-based load balancers see the change.
    type: float
    default: 3
  stop_timeout:
    description: Seconds an old container gets to stop after SIGTERM before it is killed.
    type: int
    default: 30
  rollback:
    description: With O(action=update), roll replaced containers back to the previous configuration when a new container fails.
    type: bool
    default: true
  logs_tail:
    description: Log lines of a failing new container to include in the failure message.
    type: int
    default: 30
extends_documentation_fragment:
  - stackops.runbooks.compose
  - stackops.runbooks.attributes
  - stackops.runbooks.attributes.changes_state
  - stackops.runbooks.attributes.actiongroup_compose
notes:
  - Supports check mode - it reports the containers that would be replaced.
  - The scale compose remembers is the number of containers; a later plain C(docker compose up) applies the compose file's own scale.
seealso:
  - module: stackops.runbooks.compose_service
  - module: stackops.runbooks.compose_scale
'''

EXAMPLES = r'''
- name: Rolling restart of the api, one container at a time
  stackops.runbooks.compose_rolling:
    project_dir: /srv/app
    service: api

- name: Rolling update of the api to image tag 2, rolled back if a new container is unhealthy
  stackops.runbooks.compose_rolling:
    project_dir: /srv/app
    service: api
    action: update
    env:
      API_TAG: "2"
'''

RETURN = r'''
replaced:
  description: One entry per step - old and new container names, new image id and the seconds the step took.
  returned: always
  type: list
  elements: dict
rolled_back:
  description: Whether a failed update was rolled back.
  returned: always
  type: bool
containers_before:
  description: Names of the service's containers before the run.
  returned: always
  type: list
  elements: str
containers_after:
  description: Names of the service's containers after the run.
  returned: always
  type: list
  elements: str
elapsed:
  description: Seconds for the whole run.
  returned: always
  type: float
'''

import time

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.stackops.runbooks.plugins.module_utils.compose import (
    compose_argument_spec, compose_config, docker_inspect, project_label, replica_limit, run_compose, services_snapshot)


class RollFailed(Exception):
    pass


class Roller(object):
    def __init__(self, module):
        self.module = module
        self.params = module.params
        self.service = self.params['service']
        self.docker = module.get_bin_path('docker', required=True)

    def containers(self):
        return services_snapshot(self.module, self.params, [self.service], restart_warning=0)[self.service]['containers']

    def add_container(self, env):
        """Scale up by one without touching existing containers; returns the new container's description."""
        current = self.containers()
        known = set(item['id'] for item in current)
        run_compose(self.module, self.params, ['up', '-d', '--no-deps', '--no-recreate', '--scale',
                                               '%s=%d' % (self.service, len(current) + 1), self.service], environ_update=env)
        fresh = [item for item in self.containers() if item['id'] not in known]
        if len(fresh) != 1:
            raise RollFailed('expected one new %s container after scaling to %d, found %d' % (self.service, len(current) + 1, len(fresh)))
        return fresh[0]

    def wait_healthy(self, container):
        deadline = time.monotonic() + self.params['wait_timeout']
        while True:
            info = docker_inspect(self.module, [container['id']])
            state = (info[0].get('State') or {}) if info else {}
            health = (state.get('Health') or {}).get('Status', '')
            if state.get('Status') == 'running' and health in ('healthy', ''):
                return
            restarts = info[0].get('RestartCount', 0) if info else 0
            if restarts:
                raise RollFailed('new container %s is crash-looping (restarted %d times, last exit code %s)' % (
                    container['name'], restarts, state.get('ExitCode')))
            if state.get('Status') in ('exited', 'dead') or health == 'unhealthy':
                raise RollFailed('new container %s is %s%s (exit code %s)' % (
                    container['name'], state.get('Status'), (' ' + health) if health else '', state.get('ExitCode')))
            if time.monotonic() >= deadline:
                raise RollFailed('new container %s not healthy after %ss (%s %s)' % (
                    container['name'], self.params['wait_timeout'], state.get('Status'), health))
            time.sleep(self.params['interval'])

    def remove(self, container, graceful=True):
        if graceful:
            self.module.run_command([self.docker, 'stop', '-t', str(self.params['stop_timeout']), container['id']])
        self.module.run_command([self.docker, 'rm', '-f', container['id']])

    def logs(self, container):
        _rc, out, err = self.module.run_command([self.docker, 'logs', '--tail', str(self.params['logs_tail']), container['id']])
        return (out + err).strip()

    def step(self, old, env):
        """Replace one old container by a new one; on failure the new one is removed and RollFailed raised."""
        started = time.monotonic()
        new = self.add_container(env)
        try:
            self.wait_healthy(new)
        except RollFailed as exc:
            logs = self.logs(new) if self.params['logs_tail'] else ''
            self.remove(new, graceful=False)
            raise RollFailed('%s\n--- last %d log lines of %s ---\n%s' % (exc, self.params['logs_tail'], new['name'], logs))
        # Let DNS caches (nginx resolver valid=1s) include the new container before an old one leaves.
        time.sleep(self.params['drain_seconds'])
        self.remove(old)
        info = docker_inspect(self.module, [new['id']])
        return dict(old=old['name'], new=new['name'], image_id=info[0].get('Image') if info else None,
                    seconds=round(time.monotonic() - started, 3))


def main():
    spec = compose_argument_spec()
    spec.update(
        service=dict(type='str', required=True),
        action=dict(type='str', choices=['restart', 'update'], default='restart'),
        env=dict(type='dict', default={}),
        pull=dict(type='bool', default=False),
        wait_timeout=dict(type='float', default=120),
        interval=dict(type='float', default=1),
        drain_seconds=dict(type='float', default=3),
        stop_timeout=dict(type='int', default=30),
        rollback=dict(type='bool', default=True),
        logs_tail=dict(type='int', default=30),
    )
    module = AnsibleModule(argument_spec=spec, supports_check_mode=True)
    params = module.params
    service = params['service']
    if params['action'] == 'update' and not params['env']:
        module.fail_json(msg='action=update needs env with the new values (for example {API_TAG: "2"}); for a plain restart use action=restart')
    env = dict((key, str(value)) for key, value in params['env'].items()) if params['action'] == 'update' else {}

    config = compose_config(module, params)
    if service not in (config.get('services') or {}):
        module.fail_json(msg='service %s not defined in compose project %s' % (service, project_label(params)))
    limit, reasons = replica_limit(config, service)
    roller = Roller(module)
    old = roller.containers()
    if limit is not None and len(old) + 1 > limit:
        module.fail_json(msg='service %s has %s, so a second container cannot run beside the first; '
                             'a rolling %s is impossible - use compose_service state=restarted (brief downtime) or publish '
                             'an ephemeral port' % (service, ' and '.join(reasons), params['action']))

    before_names = [item['name'] for item in old]
    if not old:
        module.fail_json(msg='service %s of %s has no containers to roll; start it first (compose_service state=up)' % (
            service, project_label(params)))
    if module.check_mode:
        module.exit_json(changed=True, replaced=[dict(old=name, new=None) for name in before_names], rolled_back=False,
                         containers_before=before_names, containers_after=before_names, elapsed=0.0)

    start = time.monotonic()
    if params['pull']:
        run_compose(module, params, ['pull', '--quiet', service], environ_update=env)
    replaced = []
    new_ones = []
    for container in old:
        try:
            entry = roller.step(container, env)
        except RollFailed as exc:
            rolled_back = False
            rollback_error = ''
            if params['action'] == 'update' and params['rollback'] and new_ones:
                try:
                    for updated in [item for item in roller.containers() if item['id'] in new_ones]:
                        roller.step(updated, {})
                    rolled_back = True
                except RollFailed as rb_exc:
                    rollback_error = '; ROLLBACK FAILED too: %s' % rb_exc
            elif params['action'] == 'update' and params['rollback']:
                rolled_back = True  # nothing was replaced yet: removing the failed new container was the rollback
            module.fail_json(
                msg='rolling %s of service %s (%s) stopped after %d of %d containers: %s%s%s' % (
                    params['action'], service, project_label(params), len(replaced), len(old), exc,
                    '\nrolled back: the service runs its previous configuration' if rolled_back else '', rollback_error),
                changed=True, replaced=replaced, rolled_back=rolled_back, containers_before=before_names,
                containers_after=[item['name'] for item in roller.containers()], elapsed=round(time.monotonic() - start, 3))
        replaced.append(entry)
        new_ones.append([item['id'] for item in roller.containers() if item['name'] == entry['new']][0])
    module.exit_json(changed=True, replaced=replaced, rolled_back=False, containers_before=before_names,
                     containers_after=[item['name'] for item in roller.containers()], elapsed=round(time.monotonic() - start, 3))


if __name__ == '__main__':
    main()
