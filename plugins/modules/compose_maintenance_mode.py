#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, stackops maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import (absolute_import, division, print_function)
__metaclass__ = type

DOCUMENTATION = r'''
---
module: compose_maintenance_mode
short_description: Switch the frontend maintenance page of a compose stack on or off
version_added: 0.1.0
description:
  - The frontend serves its maintenance page (HTTP 503) while a flag file exists in the frontend container.
    This module creates or removes that file with C(docker compose exec), so every replica that mounts the
    flag's volume switches at once, without a reload.
  - Idempotent; in check mode it reads the current state and reports what it would change.
author:
  - stackops maintainers (@stackops)
options:
  state:
    description: V(on) shows the maintenance page, V(off) serves the application again.
    type: str
    required: true
    choices: ['on', 'off']
  service:
    description: Compose service that serves the maintenance page while the flag exists (the page contract, docs/maintenance.md).
    type: str
    required: true
  flag_path:
    description: Path of the flag file inside the frontend container.
    type: path
    default: /var/lib/stackops-maintenance/on
  reason:
    description:
      - Text written into the flag file when maintenance mode is switched on (who, why, until when), for operators who look at it.
        It does not change an existing flag.
    type: str
    default: maintenance window
extends_documentation_fragment:
  - stackops.runbooks.compose
  - stackops.runbooks.attributes
  - stackops.runbooks.attributes.changes_state
  - stackops.runbooks.attributes.actiongroup_compose
notes:
  - The flag lives on a named volume in the demo stack, so it survives container restarts and recreation.
seealso:
  - module: stackops.runbooks.pg_maintenance
'''

EXAMPLES = r'''
- name: Show the maintenance page
  stackops.runbooks.compose_maintenance_mode:
    state: 'on'
    reason: "weekly maintenance until 23:00 UTC"
    service: proxy
    project_dir: /srv/app
    project_name: app

- name: Serve the application again
  stackops.runbooks.compose_maintenance_mode:
    state: 'off'
    service: proxy
    project_dir: /srv/app
    project_name: app
'''

RETURN = r'''
state:
  description: Maintenance mode after the run (in check mode, the state it would be in).
  returned: always
  type: str
  sample: 'on'
previous_state:
  description: Maintenance mode before the run.
  returned: always
  type: str
  sample: 'off'
flag_path:
  description: The flag file inside the container.
  returned: always
  type: str
  sample: /var/lib/stackops-maintenance/on
'''

import posixpath

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.stackops.runbooks.plugins.module_utils.compose import compose_argument_spec, run_compose
from ansible_collections.stackops.runbooks.plugins.module_utils.maintenance import maintenance_flag_script


def main():
    spec = compose_argument_spec()
    spec.update(
        state=dict(type='str', required=True, choices=['on', 'off']),
        service=dict(type='str', required=True),
        flag_path=dict(type='path', default='/var/lib/stackops-maintenance/on'),
        reason=dict(type='str', default='maintenance window'),
    )
    module = AnsibleModule(argument_spec=spec, supports_check_mode=True)
    params = module.params
    flag = params['flag_path']
    where = 'service %s of project %s' % (params['service'], params.get('project_name') or params.get('project_dir'))

    def in_container(action, check_rc=True):
        # The path and reason travel as positional arguments of sh, never inside the script text.
        args = ['exec', '-T', params['service'], 'sh', '-c', maintenance_flag_script(action), 'stackops', flag,
                posixpath.dirname(flag), params['reason']]
        rc, out, err = run_compose(module, params, args, check_rc=False)
        if check_rc and rc != 0:
            module.fail_json(msg='cannot %s the maintenance flag %s in %s (rc=%s): %s; is the service running '
                                 '(docker compose ps)?' % (action, flag, where, rc, (err or out).strip()),
                             rc=rc, stdout=out, stderr=err)
        return out.strip()

    current = in_container('read')
    if current not in ('on', 'off'):
        module.fail_json(msg='unexpected answer %r reading the maintenance flag %s in %s' % (current, flag, where))
    result = dict(changed=current != params['state'], previous_state=current, state=params['state'], flag_path=flag)
    if result['changed'] and not module.check_mode:
        in_container('set' if params['state'] == 'on' else 'clear')
        after = in_container('read')
        if after != params['state']:
            module.fail_json(msg='maintenance flag %s in %s is still %s after switching it %s; check the volume mount'
                                 % (flag, where, after, params['state']), **result)
    module.exit_json(**result)


if __name__ == '__main__':
    main()
