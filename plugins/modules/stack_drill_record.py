#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, stackops maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function
__metaclass__ = type

DOCUMENTATION = r'''
---
module: stack_drill_record
short_description: Record a restore drill in the drill catalog, with its measured RTO and phase timings
version_added: 0.3.0
description:
  - Writes one record per drill to C(<drills_dir>/records/<drill id>.json) (the newest O(keep) are kept) - the result,
    the backup restored, the measured RTO (from the start of the drill to the application healthy and every check
    passed), the seconds of each phase (fetch, restore, start, checks), the checks, and what was torn down.
  - Returns the drill catalog's summary (last drill, last passing one, RTO trend of the last 10) and its Prometheus
    metrics (C(stackops_drill_last_success_timestamp), C(stackops_drill_rto_seconds), C(stackops_drill_last_passed)),
    written to O(metrics_file) when given, for a node_exporter textfile collector.
author:
  - stackops maintainers (@stackops)
options:
  drills_dir:
    description: The drill directory, C(<backup_dir>/.drills) in the drill role.
    type: path
    required: true
  stack:
    description: Name of the stack in the metrics' C(stack) label (the compose project).
    type: str
    required: true
  status:
    description: The drill's outcome.
    type: str
    choices: [passed, failed]
    required: true
  marks:
    description:
      - Unix times the drill reached each point - C(start), C(fetched), C(restored), C(started) (services healthy),
        C(checked) (every check passed). The RTO is C(checked) minus C(start).
    type: dict
    required: true
  backup:
    description: The set or base backup restored, as M(stackops.runbooks.compose_drill) returned it.
    type: dict
    default: {}
  from_remote:
    description: Whether the backup was fetched from an off-site target first.
    type: bool
    default: false
  http_results:
    description: The results of M(stackops.runbooks.stack_http_info) over the drill's health URLs and HTTP checks.
    type: list
    elements: dict
    default: []
  sql_results:
    description: The C(results) of M(stackops.runbooks.pg_sql_check_info) over the drill's SQL checks.
    type: list
    elements: dict
    default: []
  error:
    description: Why the drill failed.
    type: str
  failed_step:
    description: The step the drill failed in.
    type: str
  cleaned_up:
    description: What an earlier drill had left and this one removed first.
    type: list
    elements: str
    default: []
  torn_down:
    description: What was removed after the drill.
    type: list
    elements: str
    default: []
  teardown_error:
    description: Why tearing the drill down failed (what is left is then named here).
    type: str
  kept:
    description: Whether the drill was left running for a look (C(--keep)).
    type: bool
    default: false
  rto_objective:
    description:
      - The recovery time objective (C(stackops_rto)), seconds or a duration such as V(30m); the record says whether
        the measured RTO met it.
    type: str
  metrics_file:
    description: Where to write the Prometheus text file; nothing is written when unset.
    type: path
  keep:
    description: How many drill records to keep.
    type: int
    default: 200
extends_documentation_fragment:
  - stackops.runbooks.attributes
  - stackops.runbooks.attributes.changes_state
seealso:
  - module: stackops.runbooks.compose_drill
  - module: stackops.runbooks.stack_status_info
'''

EXAMPLES = r'''
- name: Record the drill
  stackops.runbooks.stack_drill_record:
    drills_dir: /var/backups/shop/.drills
    stack: shop
    status: passed
    marks: {start: 1767225600.0, fetched: 1767225600.0, restored: 1767225631.5, started: 1767225650.2, checked: 1767225653.0}
    backup: {id: shop-20260101T000000000Z, kind: logical}
    rto_objective: 30m
'''

RETURN = r'''
record:
  description: The drill record written (C(id), C(status), C(rto_seconds), C(phase_seconds), C(backup), C(checks), ...).
  returned: always
  type: dict
summary:
  description: The catalog after this drill - C(last), C(last_success), C(rto_trend) (passing drills among the last 10,
    newest first), C(count).
  returned: always
  type: dict
metrics:
  description: The Prometheus text exposition of the drill catalog.
  returned: always
  type: str
'''

import time

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.stackops.runbooks.plugins.module_utils.drill import (
    DrillError, Paths, TREND, check_results, drill_metrics, drill_summary, load_records, objective_seconds,
    phase_seconds, save_record, unique_record_id)
from ansible_collections.stackops.runbooks.plugins.module_utils.pitr import write_if_changed


def main():
    module = AnsibleModule(argument_spec=dict(
        drills_dir=dict(type='path', required=True),
        stack=dict(type='str', required=True),
        status=dict(type='str', choices=['passed', 'failed'], required=True),
        marks=dict(type='dict', required=True),
        backup=dict(type='dict', default={}),
        from_remote=dict(type='bool', default=False),
        http_results=dict(type='list', elements='dict', default=[]),
        sql_results=dict(type='list', elements='dict', default=[]),
        error=dict(type='str'),
        failed_step=dict(type='str'),
        cleaned_up=dict(type='list', elements='str', default=[]),
        torn_down=dict(type='list', elements='str', default=[]),
        teardown_error=dict(type='str'),
        kept=dict(type='bool', default=False),
        rto_objective=dict(type='str'),
        metrics_file=dict(type='path'),
        keep=dict(type='int', default=200),
    ), supports_check_mode=True)
    params = module.params
    paths = Paths(params['drills_dir'])
    try:
        objective = objective_seconds(params['rto_objective'], 'stackops_rto')
    except DrillError as exc:
        module.fail_json(msg=str(exc))
    checks = check_results(params['http_results'], params['sql_results'])
    marks = dict((key, float(value)) for key, value in params['marks'].items() if value not in (None, ''))
    now = time.time()
    passed = params['status'] == 'passed'
    rto = round(marks['checked'] - marks['start'], 3) if passed and 'checked' in marks and 'start' in marks else None
    record = dict(
        id=unique_record_id(paths, marks.get('start', now)), status=params['status'], stack=params['stack'],
        started_at=time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime(marks.get('start', now))),
        finished_at=time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime(now)), finished_epoch=round(now, 3),
        rto_seconds=rto, phase_seconds=phase_seconds(marks), backup=params['backup'], from_remote=params['from_remote'],
        checks=checks, failed_checks=[item['name'] for item in checks if not item['ok']],
        error=params['error'], failed_step=params['failed_step'], cleaned_up=params['cleaned_up'],
        torn_down=params['torn_down'], teardown_error=params['teardown_error'], kept=params['kept'],
        rto_objective_seconds=objective, rto_met=None if rto is None or objective is None else rto <= objective)
    records = load_records(paths, TREND)
    if not module.check_mode:
        save_record(paths, record, params['keep'])
    summary = drill_summary(([record] + records)[:TREND], now)
    metrics = drill_metrics(params['stack'], summary)
    if params['metrics_file'] and not module.check_mode:
        write_if_changed(params['metrics_file'], metrics, mode=0o644)
    module.exit_json(changed=not module.check_mode, record=record, summary=summary, metrics=metrics)


if __name__ == '__main__':
    main()
