# -*- coding: utf-8 -*-
# Copyright: (c) 2026, stackops maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""HTTP health probes, written once for http_health and stack_health.

``run_http_health(params)`` takes http_health's options and returns its result, including the
health check; it never calls ``fail_json``, so the caller decides what an unhealthy URL means.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import json
import time

from ansible.module_utils.common.text.converters import to_native, to_text
from ansible.module_utils.six.moves.urllib.error import HTTPError, URLError
from ansible.module_utils.urls import open_url

from ansible_collections.stackops.runbooks.plugins.module_utils.checks import (
    CRITICAL, OK, WARNING, body_regex_mismatch, json_mismatches, make_check)


def http_health_spec():
    """Argument spec of one probe (http_health's options)."""
    return dict(
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
    )


def options_problem(params):
    if params['consecutive_successes'] < 1:
        return 'consecutive_successes must be at least 1, got %s' % params['consecutive_successes']
    return None


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


def run_http_health(params):
    """Probe once or poll ``params['url']`` (http_health's options); returns the module result, never fails."""
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
    return result
