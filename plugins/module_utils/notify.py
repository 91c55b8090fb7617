# -*- coding: utf-8 -*-
# Copyright: (c) 2026, stackops maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Notifications about procedure runs: which event a run is, its payloads, delivery, and the state behind them.

Events: ``failure`` (a failed run), ``recovered`` (the first good run after a failed one), ``success`` (opt-in).
Pings (healthchecks.io style) go to the start/success/failure URLs on every run, so a schedule that stops running
is noticed by the receiver's own timeout. A small state file per procedure and host remembers the last status (for
``recovered``) and what was already sent for a run id, so a run retried under the same id never pages twice.
Nothing here raises on an unreachable receiver: every delivery's outcome is returned for the result and history.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import json
import os
import re
import time

from ansible.module_utils.urls import open_url

SECRET_KEY = re.compile(r'(passw|secret|token|private|credential|api[_-]?key|access[_-]?key|auth)', re.I)
REDACTED = '<redacted>'


def redact(value):
    """``value`` without any entry whose key names a secret (recursively)."""
    if isinstance(value, dict):
        return dict((key, REDACTED if SECRET_KEY.search(str(key)) else redact(item)) for key, item in value.items())
    if isinstance(value, list):
        return [redact(item) for item in value]
    return value


def state_path(state_dir, procedure, host):
    safe = re.sub(r'[^A-Za-z0-9_.-]', '_', '%s-%s' % (procedure, host))[:120]
    return os.path.join(state_dir, 'notify-%s.json' % safe)


def load_state(path):
    try:
        with open(path) as handle:
            state = json.load(handle)
        return state if isinstance(state, dict) else {}
    except (IOError, OSError, ValueError):
        return {}


def save_state(path, state):
    directory = os.path.dirname(path)
    if not os.path.isdir(directory):
        os.makedirs(directory, mode=0o700)
    tmp = '%s.tmp-%d' % (path, os.getpid())
    with open(tmp, 'w') as handle:
        json.dump(state, handle, indent=2, sort_keys=True)
    os.rename(tmp, path)


def run_view(state, run_id):
    """What the state file knows about run ``run_id``: the deliveries already made for it and the status before it.

    A retry of a run (same id) keeps the status of the run before it, except that a failure this run already paged
    counts as the previous status: its good retry sends "recovered", so the page is closed and never left open.
    """
    if not run_id or state.get('run_id') != run_id:
        return set(), state.get('status')
    sent = set(state.get('sent') or [])
    previous = state.get('previous_status')
    if state.get('status') == 'failed' and 'failure' in sent:
        previous = 'failed'
    return sent, previous


def started_state(state, run_id, sent):
    """The state after a start ping of ``run_id``: a new run remembers the status of the run before it."""
    if state.get('run_id') == run_id:
        return dict(state, sent=sorted(sent))
    return dict(state, run_id=run_id, sent=sorted(sent), previous_status=state.get('status'))


def events_for(status, previous, notify_on):
    """The notification events of a finished run with ``status`` after a run with ``previous`` status."""
    failed = status == 'failed'
    events = []
    if failed and 'failure' in notify_on:
        events.append('failure')
    if not failed and previous == 'failed' and 'recovered' in notify_on:
        events.append('recovered')
    if not failed and 'success' in notify_on and 'recovered' not in events:
        events.append('success')
    return events


def summary_line(event, procedure, host, result):
    words = {'failure': 'FAILED', 'recovered': 'recovered', 'success': 'succeeded'}
    line = 'stackops %s on %s %s' % (procedure, host, words.get(event, event))
    error = (result or {}).get('error')
    if event == 'failure' and error:
        line += ': %s' % str(error)[:500]
    return line


def webhook_payload(event, procedure, host, status, run_id, result):
    return dict(source='stackops', event=event, procedure=procedure, host=host, status=status, run_id=run_id,
                sent_at=time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime()), stackops_result=redact(result or {}))


def slack_payload(event, procedure, host, status, run_id, result):
    """Slack incoming-webhook JSON (Mattermost and Rocket.Chat accept the same)."""
    icon = {'failure': ':red_circle:', 'recovered': ':large_green_circle:', 'success': ':white_check_mark:'}
    text = '%s %s' % (icon.get(event, ''), summary_line(event, procedure, host, result))
    fields = ['*status*: %s' % status]
    if run_id:
        fields.append('*run*: %s' % run_id)
    if (result or {}).get('failed_task'):
        fields.append('*failed task*: %s' % result['failed_task'])
    return dict(text=text.strip(), blocks=[
        dict(type='section', text=dict(type='mrkdwn', text=text.strip())),
        dict(type='context', elements=[dict(type='mrkdwn', text=' | '.join(fields))])])


def describe_url(url):
    """A URL for reports without its secret parts (path tokens of Slack/ping URLs, user info, query)."""
    match = re.match(r'^([a-z][a-z0-9+.-]*://)(?:[^@/]*@)?([^/?#]*)', url or '', re.I)
    return (match.group(1) + match.group(2) + '/...') if match else '<url>'


def post(url, payload, timeout, validate_certs):
    """Deliver one JSON payload (or a bare ping when ``payload`` is None); returns an outcome dict, never raises."""
    outcome = dict(url=describe_url(url), delivered=False)
    clock = time.monotonic()
    try:
        data = None if payload is None else json.dumps(payload).encode('utf-8')
        response = open_url(url, data=data, method='POST', timeout=timeout, validate_certs=validate_certs,
                            headers={'Content-Type': 'application/json'} if data is not None else {},
                            http_agent='stackops-notify')
        outcome.update(delivered=200 <= response.getcode() < 300, status=response.getcode())
        if not outcome['delivered']:
            outcome['error'] = 'HTTP %s' % response.getcode()
    except Exception as exc:  # an undeliverable notification is reported, never raised
        outcome['error'] = '%s: %s' % (type(exc).__name__, str(exc).replace(url, outcome['url'])[:300])
    outcome['seconds'] = round(time.monotonic() - clock, 3)
    return outcome


def apprise_send(urls, title, body):
    outcome = dict(url='apprise (%d URLs)' % len(urls), delivered=False)
    try:
        import apprise
    except ImportError:
        outcome['error'] = 'the apprise Python package is not installed on this host (pip install apprise)'
        return outcome
    sender = apprise.Apprise()
    for url in urls:
        sender.add(url)
    try:
        outcome['delivered'] = bool(sender.notify(title=title, body=body))
        if not outcome['delivered']:
            outcome['error'] = 'apprise could not deliver to at least one URL'
    except Exception as exc:
        outcome['error'] = '%s: %s' % (type(exc).__name__, str(exc)[:300])
    return outcome
