#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, stackops maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function
__metaclass__ = type

DOCUMENTATION = r'''
---
module: compose_scale
short_description: Scale a compose service to N containers gradually, with a health gate after every step
version_added: 0.1.0
description:
  - Moves the number of containers of one service towards O(replicas) by at most O(step) at a time
    (C(docker compose up -d --no-deps --no-recreate --scale SERVICE=K)) and, after each step up, waits until
    K containers are healthy before the next step. Existing containers are never recreated.
  - Scaling to zero stops the service entirely and is refused unless O(allow_zero=true).
  - Reports the replica counts before and after and the time of every step.
author:
  - stackops maintainers (@stackops)
options:
  service:
    description: The service to scale.
    type: str
    required: true
  replicas:
    description: Number of containers wanted.
    type: int
    required: true
  step:
    description: Containers added or removed per step.
    type: int
    default: 1
  allow_zero:
    description: Consent to scale to zero, which takes the service down.
    type: bool
    default: false
  wait_timeout:
    description: Seconds each step up may take to become healthy.
    type: float
    default: 120
  interval:
    description: Seconds between two looks while waiting.
    type: float
    default: 1
  logs_tail:
    description: Log lines of the service to include when a step does not get healthy.
    type: int
    default: 30
extends_documentation_fragment:
  - stackops.runbooks.compose
notes:
  - Supports check mode - it reports the steps it would take.
  - Compose does not persist the count; a later plain C(docker compose up) applies the compose file's own scale
    (C(deploy.replicas) or C(scale)), so set that too for a lasting change.
seealso:
  - module: stackops.runbooks.compose_rolling
'''

EXAMPLES = r'''
- name: Scale the api to 5 containers, two at a time
  stackops.runbooks.compose_scale:
    project_dir: /srv/app
    service: api
    replicas: 5
    step: 2
  register: scaled
'''

RETURN = r'''
replicas_before:
  description: Containers of the service before.
  returned: always
  type: int
replicas_after:
  description: Containers of the service after.
  returned: always
  type: int
healthy_after:
  description: Healthy (or running, without healthcheck) containers after.
  returned: always
  type: int
steps:
  description: One entry per step - replicas reached and the seconds it took.
  returned: always
  type: list
  elements: dict
elapsed:
  description: Seconds for the whole run.
  returned: always
  type: float
'''

import time

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.stackops.runbooks.plugins.module_utils.compose import (
    compose_argument_spec, compose_config, failure_report, project_label, run_compose, services_snapshot, wait_services)


def plan(current, target, step):
    """Intermediate counts from current to target, at most ``step`` apart, ending at target."""
    counts = []
    value = current
    while value != target:
        value = min(target, value + step) if target > value else max(target, value - step)
        counts.append(value)
    return counts


def main():
    spec = compose_argument_spec()
    spec.update(
        service=dict(type='str', required=True),
        replicas=dict(type='int', required=True),
        step=dict(type='int', default=1),
        allow_zero=dict(type='bool', default=False),
        wait_timeout=dict(type='float', default=120),
        interval=dict(type='float', default=1),
        logs_tail=dict(type='int', default=30),
    )
    module = AnsibleModule(argument_spec=spec, supports_check_mode=True)
    params = module.params
    service, target = params['service'], params['replicas']
    if target < 0 or params['step'] < 1:
        module.fail_json(msg='replicas must be >= 0 and step >= 1 (got replicas=%s, step=%s)' % (target, params['step']))
    if target == 0 and not params['allow_zero']:
        module.fail_json(msg='refusing to scale service %s to 0: that takes it down entirely; set allow_zero=true '
                             '(stackops_scaling_allow_zero) if that is what you want' % service)
    if service not in (compose_config(module, params).get('services') or {}):
        module.fail_json(msg='service %s not defined in compose project %s' % (service, project_label(params)))

    start = time.monotonic()
    before = services_snapshot(module, params, [service], restart_warning=0)[service]
    counts = plan(before['total'], target, params['step'])
    if module.check_mode:
        module.exit_json(changed=bool(counts), replicas_before=before['total'], replicas_after=target, healthy_after=before['healthy'],
                         steps=[dict(replicas=count, seconds=0.0) for count in counts], elapsed=0.0)

    steps = []
    for count in counts:
        step_start = time.monotonic()
        run_compose(module, params, ['up', '-d', '--no-deps', '--no-recreate', '--scale', '%s=%d' % (service, count), service])
        if count > 0:
            snap, not_ready, _waited, reason = wait_services(module, params, [service], replicas={service: count},
                                                             timeout=params['wait_timeout'], interval=params['interval'])
            if not_ready:
                module.fail_json(
                    msg='scaling %s of %s stopped at %d of %d containers: %s\n%s\nThe containers started so far are left '
                        'running; scale back with replicas=%d if needed' % (
                            service, project_label(params), count, target, reason,
                            failure_report(module, params, snap, [service], params['logs_tail']), before['total']),
                    changed=True, replicas_before=before['total'], replicas_after=snap[service]['total'],
                    healthy_after=snap[service]['healthy'], steps=steps, elapsed=round(time.monotonic() - start, 3))
        steps.append(dict(replicas=count, seconds=round(time.monotonic() - step_start, 3)))
    after = services_snapshot(module, params, [service], restart_warning=0)[service] if counts else before
    module.exit_json(changed=bool(counts), replicas_before=before['total'], replicas_after=after['total'], healthy_after=after['healthy'],
                     steps=steps, elapsed=round(time.monotonic() - start, 3))


if __name__ == '__main__':
    main()
