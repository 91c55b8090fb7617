#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, stackops maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function
__metaclass__ = type

DOCUMENTATION = r'''
---
module: stack_maintenance_plan_info
short_description: Plan a maintenance window - its tasks in order and its deadline
version_added: 0.2.0
description:
  - Turns a maintenance level or an explicit task list into the ordered tasks of the window, and parses the
    window deadline once, with the same rules as M(stackops.runbooks.pg_maintenance) (C(parse_deadline) in
    C(module_utils/maintenance.py)).
  - Fails naming the unknown level, task or deadline form, before anything is touched.
  - Changes nothing.
author:
  - stackops maintainers (@stackops)
options:
  level:
    description: Maintenance level whose tasks run when O(tasks) is empty.
    type: str
    choices: [none, daily, weekly, monthly, quarterly]
    default: weekly
  tasks:
    description:
      - Explicit tasks, which win over O(level) - names, dicts with a C(name) key (and task options),
        or one comma-separated string of names.
    type: raw
    default: []
  update_services:
    description: Services whose images a C(rolling_update) task (appended unless O(tasks) has one) replaces.
    type: list
    elements: str
    default: []
  deadline:
    description:
      - End of the window - an ISO 8601 time (C(2026-11-23T23:00:00Z); without an offset it is UTC) or minutes from
        now (C(90)). Empty means no deadline.
    type: str
    default: ""
extends_documentation_fragment:
  - stackops.runbooks.attributes
  - stackops.runbooks.attributes.info_module
notes:
  - Supports check mode; it is read-only, so check mode behaves like a normal run.
seealso:
  - module: stackops.runbooks.pg_maintenance
'''

EXAMPLES = r'''
- name: Plan a weekly window that must end at 23:00 UTC
  stackops.runbooks.stack_maintenance_plan_info:
    level: weekly
    deadline: "2026-11-23T23:00:00Z"
  register: plan
'''

RETURN = r'''
plan:
  description: The tasks of the window, in order, each a dict with at least C(name).
  returned: always
  type: list
  elements: dict
  sample: [{name: vacuum_analyze}, {name: docker_prune}, {name: log_cleanup}]
deadline:
  description: The deadline as an ISO 8601 UTC time, or an empty string without one.
  returned: always
  type: str
  sample: '2026-11-23T23:00:00Z'
deadline_epoch:
  description: The deadline in seconds since the epoch; V(0) without one.
  returned: always
  type: float
expired:
  description: Whether the deadline had already passed.
  returned: always
  type: bool
started_epoch:
  description: Now, in seconds since the epoch - the start of the window.
  returned: always
  type: float
'''

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.stackops.runbooks.plugins.module_utils.maintenance import LEVELS, UTC, parse_deadline, utcnow, window_tasks


def main():
    module = AnsibleModule(argument_spec=dict(
        level=dict(type='str', choices=list(LEVELS), default='weekly'),
        tasks=dict(type='raw', default=[]),
        update_services=dict(type='list', elements='str', default=[]),
        deadline=dict(type='str', default=''),
    ), supports_check_mode=True)
    params = module.params
    now = utcnow()
    try:
        plan = window_tasks(params['level'], params['tasks'], params['update_services'])
        deadline = parse_deadline(params['deadline'], start=now)
    except ValueError as exc:
        module.fail_json(msg='invalid maintenance request: %s; fix stackops_maintenance_level, stackops_maintenance_tasks or '
                             'stackops_maintenance_deadline and run again. Nothing was changed.' % exc)
    epoch = deadline.astimezone(UTC).timestamp() if deadline else 0.0
    module.exit_json(changed=False, plan=plan, deadline=deadline.astimezone(UTC).strftime('%Y-%m-%dT%H:%M:%SZ') if deadline else '',
                     deadline_epoch=epoch, expired=bool(deadline) and now >= deadline, started_epoch=now.timestamp())


if __name__ == '__main__':
    main()
