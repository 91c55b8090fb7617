#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, stackops maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function
__metaclass__ = type

DOCUMENTATION = r'''
---
module: stack_health_report
short_description: Aggregate health checks into one report, optionally written as JSON
version_added: 0.1.0
description:
  - Takes the checks returned by M(stackops.runbooks.compose_service_info), M(stackops.runbooks.stack_http_info),
    M(stackops.runbooks.pg_health_info) and M(stackops.runbooks.host_resources_info) and builds one report with the
    overall severity, counts, the CRITICAL and WARNING messages, and which checks fail the run under O(fail_on).
  - Does not fail by itself; the caller decides with the C(failed) and C(fail_message) keys of RV(report).
  - Writes the report as JSON to O(path) on the managed host when given.
author:
  - stackops maintainers (@stackops)
options:
  checks:
    description: Checks, each a dict with name, severity (OK, WARNING, CRITICAL), message and details.
    type: list
    elements: dict
    required: true
extends_documentation_fragment:
  - stackops.runbooks.health_report
  - stackops.runbooks.attributes
  - stackops.runbooks.attributes.changes_state
notes:
  - Supports check mode; the report is built but the file is not written.
'''

EXAMPLES = r'''
- name: Aggregate and keep a copy for the ticket
  stackops.runbooks.stack_health_report:
    checks: "{{ status.checks + pg.checks }}"
    fail_on: warning
    path: /var/log/stackops/health.json
  register: health
'''

RETURN = r'''
report:
  description:
    - The report - severity, counts, checks, critical and warnings (messages), fail_on, failed, fail_message,
      generated_at (UTC ISO 8601) and the O(metadata) keys.
  returned: always
  type: dict
summary:
  description: Readable lines, worst check first.
  returned: always
  type: list
  elements: str
path:
  description: Where the report was written.
  returned: when O(path) is set
  type: str
'''

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.stackops.runbooks.plugins.module_utils.checks import FAIL_ON_CHOICES
from ansible_collections.stackops.runbooks.plugins.module_utils.health import report_result


def main():
    module = AnsibleModule(
        argument_spec=dict(
            checks=dict(type='list', elements='dict', required=True),
            fail_on=dict(type='str', choices=list(FAIL_ON_CHOICES), default='critical'),
            path=dict(type='path'),
            metadata=dict(type='dict', default={}),
        ),
        supports_check_mode=True,
    )
    module.exit_json(**report_result(module, module.params['checks'], module.params))


if __name__ == '__main__':
    main()
