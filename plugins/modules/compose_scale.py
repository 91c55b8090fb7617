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
  - Refuses before acting when the service cannot run that many containers - a fixed host port (one container per
    published port) or a C(container_name) - so compose never leaves an extra container in state C(created).
  - When a step fails (compose error, a new container that exits or stays unhealthy), the containers this run added
    are removed and missing ones brought back, so the service ends with its previous number of containers.
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
  - stackops.runbooks.attributes
  - stackops.runbooks.attributes.changes_state
  - stackops.runbooks.attributes.actiongroup_compose
  - stackops.runbooks.caller
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
restored:
  description: Whether a failed run returned the service to its previous number of containers.
  returned: always
  type: bool
'''

import time

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.stackops.runbooks.plugins.module_utils.caller_words import option_variables_spec, setting
from ansible_collections.stackops.runbooks.plugins.module_utils.compose import (
    check_scale_request, compose_argument_spec, compose_config, failure_report, project_label, replica_limit, run_compose,
    scale_plan, services_snapshot, wait_services)


def restore_count(module, params, service, before):
    """Put the service back to the containers it had: remove every container the run added (whatever its state,
    also ``created`` ones that never started) and bring back missing ones. Returns (replicas now, problems)."""
    docker = module.get_bin_path('docker', required=True)
    known = set(item['id'] for item in before['containers'])
    problems = []
    now = services_snapshot(module, params, [service], restart_warning=0)[service]
    for item in now['containers']:
        if item['id'] not in known:
            rc, _out, err = module.run_command([docker, 'rm', '-f', item['id']])
            if rc != 0:
                problems.append('cannot remove %s: %s' % (item['name'], err.strip()))
    now = services_snapshot(module, params, [service], restart_warning=0)[service]
    if now['total'] < before['total']:
        rc, out, err = run_compose(module, params, ['up', '-d', '--no-deps', '--no-recreate', '--scale',
                                                    '%s=%d' % (service, before['total']), service], check_rc=False)
        if rc != 0:
            problems.append('scaling back to %d failed: %s' % (before['total'], (err or out).strip()))
        else:
            _snap, not_ready, _waited, reason = wait_services(module, params, [service], replicas={service: before['total']},
                                                              timeout=params['wait_timeout'], interval=params['interval'])
            if not_ready:
                problems.append('back at %d containers but not healthy: %s' % (before['total'], reason))
        now = services_snapshot(module, params, [service], restart_warning=0)[service]
    return now, problems


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
    spec.update(option_variables_spec())
    module = AnsibleModule(argument_spec=spec, supports_check_mode=True)
    params = module.params
    service, target = params['service'], params['replicas']
    problems = check_scale_request(service, target, params['step'], params['allow_zero'],
                                   allow_zero_setting=setting(params, 'allow_zero', True))
    if problems:
        module.fail_json(msg='; '.join(problems))
    config = compose_config(module, params)
    if service not in (config.get('services') or {}):
        module.fail_json(msg='service %s not defined in compose project %s' % (service, project_label(params)))

    start = time.monotonic()
    before = services_snapshot(module, params, [service], restart_warning=0)[service]
    limit, reasons = replica_limit(config, service)
    if limit is not None and target > limit:
        # Compose would create the extra containers and leave them in state created when they cannot start.
        module.fail_json(msg='refusing to scale service %s of %s to %d: it has %s, so at most %d container(s) can run; '
                             'nothing was changed. Publish an ephemeral port (e.g. "127.0.0.1::8000") or drop '
                             'container_name to scale it' % (service, project_label(params), target, ' and '.join(reasons), limit),
                         replicas_before=before['total'], replicas_after=before['total'], healthy_after=before['healthy'],
                         steps=[], elapsed=0.0, restored=False)
    counts = scale_plan(before['total'], target, params['step'])
    if module.check_mode:
        module.exit_json(changed=bool(counts), replicas_before=before['total'], replicas_after=target, healthy_after=before['healthy'],
                         steps=[dict(replicas=count, seconds=0.0) for count in counts], elapsed=0.0, restored=False)

    steps = []
    for count in counts:
        step_start = time.monotonic()
        rc, out, err = run_compose(module, params, ['up', '-d', '--no-deps', '--no-recreate', '--scale', '%s=%d' % (service, count), service],
                                   check_rc=False)
        reason, report = None, ''
        if rc != 0:
            reason = 'docker compose up --scale %s=%d failed (rc=%s): %s' % (service, count, rc, (err or out).strip())
        elif count > 0:
            snap, not_ready, _waited, why = wait_services(module, params, [service], replicas={service: count},
                                                          timeout=params['wait_timeout'], interval=params['interval'])
            if not_ready:
                reason, report = why, failure_report(module, params, snap, [service], params['logs_tail'])
        if reason:
            after, restore_problems = restore_count(module, params, service, before)
            restored = not restore_problems and after['total'] == before['total']
            module.fail_json(
                msg='scaling %s of %s stopped at %d of %d containers: %s\n%s\n%s' % (
                    service, project_label(params), count, target, reason, report,
                    'Returned to %d container(s); the containers this run added were removed.' % before['total'] if restored else
                    'RETURNING TO %d CONTAINER(S) FAILED: %s; check docker compose ps %s and scale back by hand' % (
                        before['total'], '; '.join(restore_problems) or 'now %d' % after['total'], service)),
                changed=True, replicas_before=before['total'], replicas_after=after['total'],
                healthy_after=after['healthy'], steps=steps, elapsed=round(time.monotonic() - start, 3), restored=restored)
        steps.append(dict(replicas=count, seconds=round(time.monotonic() - step_start, 3)))
    after = services_snapshot(module, params, [service], restart_warning=0)[service] if counts else before
    module.exit_json(changed=bool(counts), replicas_before=before['total'], replicas_after=after['total'], healthy_after=after['healthy'],
                     steps=steps, elapsed=round(time.monotonic() - start, 3), restored=False)


if __name__ == '__main__':
    main()
