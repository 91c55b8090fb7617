#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, stackops maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function
__metaclass__ = type

DOCUMENTATION = r'''
---
module: stack_http_info
short_description: Wait until an HTTP health URL is healthy, or probe it once
version_added: 0.1.0
description:
  - Polls O(url) until it answers with an expected status code, the expected JSON fields and
    an optional body regex, for O(consecutive_successes) probes in a row, or until O(wait_timeout) passes.
  - Probes start on a fixed cadence of O(interval) seconds, so readiness is noticed within one
    interval even when single requests are slow.
  - With O(wait=false) the module probes once and reports the result as a health check.
  - Read-only; never changes anything.
author:
  - stackops maintainers (@stackops)
extends_documentation_fragment:
  - stackops.runbooks.attributes
  - stackops.runbooks.attributes.info_module
options:
  url:
    description: URL to probe.
    type: str
    required: true
  name:
    description: Label used in messages and in the returned check; defaults to O(url).
    type: str
  method:
    description: HTTP method.
    type: str
    default: GET
  headers:
    description: Extra request headers.
    type: dict
    default: {}
  status_code:
    description: Status codes that count as healthy.
    type: list
    elements: int
    default: [200]
  json:
    description:
      - 'Expected JSON fields, as a mapping of dotted path to value, for example C({"db.connected": true}).'
      - List items are addressed by index (C(items.0.name)).
      - The body must be JSON when this is set.
    type: dict
    default: {}
  body_regex:
    description: Regular expression the response body must match (Python syntax, multiline).
    type: str
  validate_certs:
    description: Verify the server certificate for HTTPS URLs.
    type: bool
    default: true
  ca_path:
    description: PEM file with the CA certificates to trust instead of the system store.
    type: path
  client_cert:
    description: PEM client certificate for mutual TLS.
    type: path
  client_key:
    description: PEM private key for O(client_cert) when it is not in the same file.
    type: path
  use_proxy:
    description: Honour the proxy environment variables.
    type: bool
    default: true
  timeout:
    description: Seconds one request may take.
    type: float
    default: 5
  wait:
    description:
      - Poll until healthy or until O(wait_timeout) passes.
      - With V(false), probe once.
    type: bool
    default: true
  wait_timeout:
    description: Seconds to keep polling before giving up.
    type: float
    default: 60
  interval:
    description: Seconds between the starts of two probes.
    type: float
    default: 1
  consecutive_successes:
    description: Healthy probes in a row required, so a flapping endpoint is not reported healthy.
    type: int
    default: 1
  latency_warning_ms:
    description: A healthy answer slower than this many milliseconds is reported as WARNING.
    type: float
  fail_on_unhealthy:
    description:
      - Fail the task when the URL is not healthy.
      - The health role sets V(false) and collects the returned check instead.
    type: bool
    default: true
notes:
  - Supports check mode; the probe runs in check mode too because it changes nothing.
seealso:
  - module: stackops.runbooks.compose_service_info
'''

EXAMPLES = r'''
- name: Wait for the API behind the frontend, requiring a working database
  stackops.runbooks.stack_http_info:
    name: api-db
    url: http://127.0.0.1:58080/api/v1/db/health
    json:
      db.connected: true
    wait_timeout: 120
    consecutive_successes: 3

- name: Probe once with a private CA and a client certificate
  stackops.runbooks.stack_http_info:
    url: https://app.internal/health
    ca_path: /etc/stackops/ca.pem
    client_cert: /etc/stackops/client.pem
    client_key: /etc/stackops/client.key
    wait: false
    fail_on_unhealthy: false
  register: probe
'''

RETURN = r'''
name:
  description: Label of the probe.
  returned: always
  type: str
url:
  description: The probed URL.
  returned: always
  type: str
healthy:
  description: Whether the URL met every expectation for the required number of probes in a row.
  returned: always
  type: bool
status:
  description: HTTP status of the last response; null when no response arrived.
  returned: always
  type: int
attempts:
  description: Number of probes made.
  returned: always
  type: int
time_to_healthy:
  description: Seconds from the first probe until the URL counted as healthy; null when it never did.
  returned: always
  type: float
elapsed:
  description: Seconds spent in total.
  returned: always
  type: float
latency_ms:
  description: Response time of the last probe that got an answer, in milliseconds.
  returned: always
  type: float
last_error:
  description: Why the last unhealthy probe failed; empty when the last probe was healthy.
  returned: always
  type: str
response_json:
  description: Parsed JSON body of the last response, when it was JSON.
  returned: when the last response was JSON
  type: raw
check:
  description: The result as a health check (name, severity, message, details).
  returned: always
  type: dict
checks:
  description: RV(check) as a one-element list, the shape the health role aggregates.
  returned: always
  type: list
  elements: dict
'''

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.stackops.runbooks.plugins.module_utils.health_http import http_health_spec, options_problem, run_http_health


def main():
    module = AnsibleModule(argument_spec=http_health_spec(), supports_check_mode=True)
    problem = options_problem(module.params)
    if problem:
        module.fail_json(msg=problem)
    result = run_http_health(module.params)
    if not result['healthy'] and module.params['fail_on_unhealthy']:
        module.fail_json(msg='%s; check the service behind it (docker compose ps, docker compose logs) '
                             'or raise wait_timeout if it is just slow to start' % result['check']['message'], **result)
    module.exit_json(**result)


if __name__ == '__main__':
    main()
