#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, stackops maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function
__metaclass__ = type

DOCUMENTATION = r'''
---
module: http_health
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
  - module: stackops.runbooks.compose_status
'''

EXAMPLES = r'''
- name: Wait for the API behind the frontend, requiring a working database
  stackops.runbooks.http_health:
    name: api-db
    url: http://127.0.0.1:58080/api/v1/db/health
    json:
      db.connected: true
    wait_timeout: 120
    consecutive_successes: 3

- name: Probe once with a private CA and a client certificate
  stackops.runbooks.http_health:
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

import json
import time

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.common.text.converters import to_native, to_text
from ansible.module_utils.six.moves.urllib.error import HTTPError, URLError
from ansible.module_utils.urls import open_url

from ansible_collections.stackops.runbooks.plugins.module_utils.checks import (
    CRITICAL, OK, WARNING, body_regex_mismatch, json_mismatches, make_check)

# Health bodies are small; a cap keeps a misrouted download from filling memory.
MAX_BODY = 1024 * 1024


def probe(params, timeout):
    """One request: returns status, latency, parsed JSON (if any) and the reason it is unhealthy."""
    started = time.monotonic()
    status = None
    body = b''
    try:
        response = open_url(
            params['url'], method=params['method'], headers=params['headers'], timeout=timeout,
            validate_certs=params['validate_certs'], ca_path=params['ca_path'], client_cert=params['client_cert'],
            client_key=params['client_key'], use_proxy=params['use_proxy'], follow_redirects='safe')
        status = response.getcode()
        body = response.read(MAX_BODY)
    except HTTPError as exc:
        # Non-2xx answers still carry a status and often a useful body.
        status = exc.code
        try:
            body = exc.read(MAX_BODY)
        except Exception:  # pylint: disable=broad-except
            body = b''
    except (URLError, OSError, ValueError) as exc:
        reason = getattr(exc, 'reason', exc)
        return dict(status=None, latency_ms=None, json=None, error='no response: %s' % to_native(reason))
    except Exception as exc:  # pylint: disable=broad-except
        # http.client raises assorted exceptions (RemoteDisconnected, BadStatusLine) on half-started servers.
        return dict(status=None, latency_ms=None, json=None, error='no response: %s: %s' % (type(exc).__name__, to_native(exc)))
    latency_ms = round((time.monotonic() - started) * 1000, 2)
    text = to_text(body, errors='surrogate_or_replace')
    parsed = None
    try:
        parsed = json.loads(text) if text.strip() else None
    except ValueError:
        parsed = None
    problems = []
    if status not in params['status_code']:
        problems.append('HTTP %s (expected %s)' % (status, ', '.join(str(code) for code in params['status_code'])))
    if params['json']:
        if parsed is None:
            problems.append('body is not JSON (expected fields %s)' % ', '.join(sorted(params['json'])))
        else:
            problems.extend(json_mismatches(parsed, params['json']))
    regex_problem = body_regex_mismatch(text, params['body_regex'])
    if regex_problem:
        problems.append(regex_problem)
    return dict(status=status, latency_ms=latency_ms, json=parsed, error='; '.join(problems))


def run(module):
    params = module.params
    wait = params['wait']
    needed = max(1, params['consecutive_successes']) if wait else 1
    interval = max(0.05, params['interval'])
    start = time.monotonic()
    deadline = start + max(0.0, params['wait_timeout'])
    attempts = 0
    streak = 0
    time_to_healthy = None
    last = None
    last_error = ''
    latency_ms = None
    while True:
        attempts += 1
        request_timeout = params['timeout']
        if wait:
            # A probe never outlives the deadline by more than a moment.
            request_timeout = max(0.5, min(request_timeout, deadline - time.monotonic()))
        last = probe(params, request_timeout)
        if last['latency_ms'] is not None:
            latency_ms = last['latency_ms']
        if last['error']:
            streak = 0
            last_error = last['error']
        else:
            streak += 1
            last_error = ''
            if streak >= needed:
                time_to_healthy = round(time.monotonic() - start, 3)
                break
        now = time.monotonic()
        if not wait or now >= deadline:
            break
        # Fixed cadence from the first probe: a slow request does not push later probes back.
        next_start = start + attempts * interval
        while next_start < now:
            next_start += interval
        time.sleep(max(0.0, min(next_start, deadline) - now))
    elapsed = round(time.monotonic() - start, 3)
    healthy = time_to_healthy is not None
    label = params['name'] or params['url']
    details = dict(url=params['url'], status=last['status'], attempts=attempts, latency_ms=latency_ms,
                   time_to_healthy=time_to_healthy, elapsed=elapsed)
    if healthy:
        if params['latency_warning_ms'] is not None and latency_ms is not None and latency_ms >= params['latency_warning_ms']:
            check = make_check('http %s' % label, WARNING, 'http %s: healthy but slow, %sms (warning at %sms)' % (
                label, latency_ms, params['latency_warning_ms']), details)
        else:
            check = make_check('http %s' % label, OK, 'http %s: HTTP %s in %sms' % (label, last['status'], latency_ms), details)
    else:
        if wait:
            reason = '%s not healthy after %ss (%d attempts): %s' % (params['url'], elapsed, attempts, last_error)
        else:
            reason = '%s not healthy: %s' % (params['url'], last_error)
        if streak:
            reason += ' (only %d of %d consecutive successes)' % (streak, needed)
        check = make_check('http %s' % label, CRITICAL, 'http %s: %s' % (label, reason), dict(details, error=last_error))
    result = dict(changed=False, name=label, url=params['url'], healthy=healthy, status=last['status'], attempts=attempts,
                  time_to_healthy=time_to_healthy, elapsed=elapsed, latency_ms=latency_ms, last_error=last_error,
                  check=check, checks=[check])
    if last['json'] is not None:
        result['response_json'] = last['json']
    if not healthy and params['fail_on_unhealthy']:
        module.fail_json(msg='%s; check the service behind it (docker compose ps, docker compose logs) '
                             'or raise wait_timeout if it is just slow to start' % check['message'], **result)
    module.exit_json(**result)


def main():
    module = AnsibleModule(
        argument_spec=dict(
            url=dict(type='str', required=True),
            name=dict(type='str'),
            method=dict(type='str', default='GET'),
            headers=dict(type='dict', default={}),
            status_code=dict(type='list', elements='int', default=[200]),
            json=dict(type='dict', default={}),
            body_regex=dict(type='str'),
            validate_certs=dict(type='bool', default=True),
            ca_path=dict(type='path'),
            client_cert=dict(type='path'),
            client_key=dict(type='path'),
            use_proxy=dict(type='bool', default=True),
            timeout=dict(type='float', default=5),
            wait=dict(type='bool', default=True),
            wait_timeout=dict(type='float', default=60),
            interval=dict(type='float', default=1),
            consecutive_successes=dict(type='int', default=1),
            latency_warning_ms=dict(type='float'),
            fail_on_unhealthy=dict(type='bool', default=True),
        ),
        supports_check_mode=True,
    )
    if module.params['consecutive_successes'] < 1:
        module.fail_json(msg='consecutive_successes must be at least 1, got %s' % module.params['consecutive_successes'])
    run(module)


if __name__ == '__main__':
    main()
