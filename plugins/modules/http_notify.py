#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, stackops maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function
__metaclass__ = type

DOCUMENTATION = r'''
---
module: http_notify
short_description: Notify webhooks, Slack and dead-man's-switch pings about a procedure run
version_added: 0.1.0
description:
  - With O(event=start), pings O(ping_start_url) (or C(<ping_url>/start)).
  - With O(event=finish), decides from O(status) and the state of the previous run which notifications the run
    is - V(failure) on a failed run, V(recovered) on the first good run after a failed one, V(success) only when
    listed in O(notify_on) - and sends each to every O(webhook_urls) (JSON with the redacted O(result)),
    O(slack_webhook_urls) (Slack-compatible text) and O(apprise_urls) (any service apprise supports). It pings
    O(ping_success_url) or O(ping_failure_url) (C(<ping_url>) or C(<ping_url>/fail)) on every run.
  - Keys of O(result) that name secrets (password, secret, token, key, credential) are replaced by C(<redacted>).
  - A run id that was already notified of an event (a retried run) is not notified again; a good retry of a run
    whose failure was already paged sends V(recovered).
  - Never fails because a receiver is unreachable or answers with an error; every delivery's outcome is returned
    in RV(deliveries) and RV(undelivered).
author:
  - stackops maintainers (@stackops)
extends_documentation_fragment:
  - stackops.runbooks.attributes
  - stackops.runbooks.attributes.changes_state
options:
  event:
    description: V(start) at the beginning of a run, V(finish) at its end.
    type: str
    choices: [start, finish]
    default: finish
  procedure:
    description: Name of the procedure (backup, restore, ...).
    type: str
    required: true
  host:
    description: Name of the stack/host the run was for.
    type: str
    required: true
  status:
    description: Outcome of the run; V(failed) is a failure, anything else a good run.
    type: str
    default: ok
  result:
    description: The run's stackops_result, sent (redacted) in the generic webhook payload.
    type: dict
    default: {}
  run_id:
    description: Id of the run (CLI run id, AWX job id); deliveries already made for it are not repeated.
    type: str
  notify_on:
    description: Events that notify. V(failure) and V(recovered) by default; add V(success) to hear of every good run.
    type: list
    elements: str
    choices: [failure, recovered, success]
    default: [failure, recovered]
  webhook_urls:
    description: URLs that receive a JSON POST per event.
    type: list
    elements: str
    default: []
  slack_webhook_urls:
    description: Slack (or Mattermost, Rocket.Chat) incoming-webhook URLs. They are secrets and never logged.
    type: list
    elements: str
    default: []
  apprise_urls:
    description: apprise URLs (C(mailto://), C(tgram://), C(msteams://), ...); needs the apprise package.
    type: list
    elements: str
    default: []
  ping_url:
    description: healthchecks.io-style base URL; start, success and failure pings go to C(/start), the URL itself and C(/fail).
    type: str
  ping_start_url:
    description: URL pinged when a run starts (overrides C(<ping_url>/start)).
    type: str
  ping_success_url:
    description: URL pinged when a run succeeds (overrides O(ping_url)).
    type: str
  ping_failure_url:
    description: URL pinged when a run fails (overrides C(<ping_url>/fail)).
    type: str
  state_dir:
    description: Directory of the state files (last status per procedure and host, run ids notified).
    type: path
    required: true
  timeout:
    description: Seconds each delivery may take.
    type: int
    default: 10
  validate_certs:
    description: Verify TLS certificates of the receivers.
    type: bool
    default: true
notes:
  - Check mode reports what would be sent and sends nothing.
seealso:
  - module: stackops.runbooks.stack_http_info
'''

EXAMPLES = r'''
- name: Tell the on-call channel about a failed backup
  stackops.runbooks.http_notify:
    procedure: backup
    host: "{{ inventory_hostname }}"
    status: "{{ stackops_result.status }}"
    result: "{{ stackops_result }}"
    slack_webhook_urls: ["{{ vault_slack_webhook }}"]
    ping_url: https://hc-ping.com/0c5d9e1a-1111-2222-3333-444455556666
    state_dir: /var/lib/stackops
'''

RETURN = r'''
events:
  description: Notification events of this run (V(failure), V(recovered), V(success)); empty for start pings.
  returned: always
  type: list
  elements: str
deliveries:
  description: One entry per delivery - kind (webhook, slack, apprise, ping), event, url (without secret parts), delivered, status or error, seconds.
  returned: always
  type: list
  elements: dict
undelivered:
  description: The deliveries that failed; they never fail the task.
  returned: always
  type: list
  elements: dict
duplicates:
  description: Events skipped because this run id was already notified of them.
  returned: always
  type: list
  elements: str
previous_status:
  description: Status of the previous run recorded in the state file, or V(null).
  returned: always
  type: str
'''

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.stackops.runbooks.plugins.module_utils.notify import (
    apprise_send, events_for, load_state, post, redact, run_view, save_state, slack_payload, started_state,
    state_path, summary_line, webhook_payload)


def ping_urls(params):
    base = (params['ping_url'] or '').rstrip('/')
    return dict(
        start=params['ping_start_url'] or (base + '/start' if base else None),
        success=params['ping_success_url'] or (base or None),
        failure=params['ping_failure_url'] or (base + '/fail' if base else None))


def main():
    module = AnsibleModule(argument_spec=dict(
        event=dict(type='str', choices=['start', 'finish'], default='finish'),
        procedure=dict(type='str', required=True),
        host=dict(type='str', required=True),
        status=dict(type='str', default='ok'),
        result=dict(type='dict', default={}),
        run_id=dict(type='str'),
        notify_on=dict(type='list', elements='str', choices=['failure', 'recovered', 'success'],
                       default=['failure', 'recovered']),
        webhook_urls=dict(type='list', elements='str', default=[], no_log=True),
        slack_webhook_urls=dict(type='list', elements='str', default=[], no_log=True),
        apprise_urls=dict(type='list', elements='str', default=[], no_log=True),
        ping_url=dict(type='str', no_log=True),
        ping_start_url=dict(type='str', no_log=True),
        ping_success_url=dict(type='str', no_log=True),
        ping_failure_url=dict(type='str', no_log=True),
        state_dir=dict(type='path', required=True),
        timeout=dict(type='int', default=10),
        validate_certs=dict(type='bool', default=True),
    ), supports_check_mode=True)
    params = module.params
    pings = ping_urls(params)
    path = state_path(params['state_dir'], params['procedure'], params['host'])
    state = load_state(path)
    run_id = params['run_id'] or None
    sent, previous = run_view(state, run_id)
    failed = params['status'] == 'failed'
    plan = []  # (kind, event, url, payload)
    events, duplicates = [], []
    if params['event'] == 'start':
        if pings['start'] and 'ping:start' not in sent:
            plan.append(('ping', 'start', pings['start'], None))
    else:
        for event in events_for(params['status'], previous, params['notify_on']):
            if event in sent:
                duplicates.append(event)
                continue
            events.append(event)
            args = (event, params['procedure'], params['host'], params['status'], run_id, params['result'])
            plan.extend(('webhook', event, url, webhook_payload(*args)) for url in params['webhook_urls'])
            plan.extend(('slack', event, url, slack_payload(*args)) for url in params['slack_webhook_urls'])
            if params['apprise_urls']:
                line = summary_line(event, params['procedure'], params['host'], params['result'])
                plan.append(('apprise', event, None, line))
        ping_event = 'failure' if failed else 'success'
        if pings[ping_event] and ('ping:%s' % ping_event) not in sent:
            body = webhook_payload(ping_event, params['procedure'], params['host'], params['status'], run_id,
                                   redact(params['result'])) if failed else None
            plan.append(('ping', ping_event, pings[ping_event], body))
    deliveries = []
    for kind, event, url, payload in plan:
        if module.check_mode:
            deliveries.append(dict(kind=kind, event=event, delivered=None, planned=True))
            continue
        if kind == 'apprise':
            outcome = apprise_send(params['apprise_urls'], 'stackops %s' % params['procedure'], payload)
        else:
            outcome = post(url, payload, params['timeout'], params['validate_certs'])
        outcome.update(kind=kind, event=event)
        deliveries.append(outcome)
        if outcome['delivered']:
            sent.add('ping:%s' % event if kind == 'ping' else event)
    if not module.check_mode and params['event'] == 'finish':
        new_state = dict(status=params['status'], previous_status=previous, run_id=run_id, sent=sorted(sent),
                         procedure=params['procedure'], host=params['host'])
        if failed:
            new_state['failing_since'] = state.get('failing_since') if state.get('status') == 'failed' else run_id
        try:
            save_state(path, new_state)
        except (IOError, OSError) as exc:
            module.warn('could not record the notification state in %s: %s; a later run may not say "recovered"'
                        % (path, exc))
    elif not module.check_mode and deliveries and run_id:
        try:
            save_state(path, started_state(state, run_id, sent))
        except (IOError, OSError) as exc:
            module.warn('could not record the notification state in %s: %s' % (path, exc))
    undelivered = [entry for entry in deliveries if entry.get('delivered') is False]
    for entry in undelivered:
        module.warn('notification %s (%s) to %s was not delivered: %s' % (
            entry['kind'], entry['event'], entry.get('url'), entry.get('error')))
    module.exit_json(changed=bool(deliveries) and not module.check_mode, events=events, deliveries=deliveries,
                     undelivered=undelivered, duplicates=duplicates, previous_status=previous)


if __name__ == '__main__':
    main()
