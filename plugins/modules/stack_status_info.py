#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, stackops maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function
__metaclass__ = type

DOCUMENTATION = r'''
---
module: stack_status_info
short_description: The stack's recoverability on one screen - backups, PITR, off-site copies, drills, schedules
version_added: 0.3.0
description:
  - Reads, in one run, what the other procedures wrote - the services' containers and their health, the newest
    verified logical backup, PITR's state (receiver, recoverable window, newest verified base backup), each off-site
    target's newest verified copy (as the last copy run recorded it), the last restore drills (result, RTO, trend of
    the last 10) and the schedules' last runs (as the caller passes them) - and judges them against the objectives.
  - RV(problems) names each objective that is not met - a backup, copy or recoverable point older than O(rpo), a dead
    WAL receiver, a failed or too old drill, a drill slower than O(rto), a service not healthy, a schedule whose last
    run failed - with what to do next. None means every objective is met.
  - Takes no backup and runs no check that waits; the docker engine is asked twice (containers and their state).
author:
  - stackops maintainers (@stackops)
options:
  backup_dir:
    description: Where backup sets live (the drill and off-site records are beside them).
    type: path
    required: true
  database:
    description: Database whose newest verified logical backup is judged.
    type: str
    required: true
  pitr_dir:
    description: Barman's directory; PITR is reported when its configuration for O(server_name) exists.
    type: path
  server_name:
    description: Barman server name.
    type: str
  rpo:
    description: Recovery point objective, seconds or a duration such as V(24h); V("") judges no age.
    type: str
    default: 24h
  rto:
    description: Recovery time objective the last passing drill's RTO must meet; unset judges no RTO.
    type: str
  drill_max_age:
    description: How old the last passing drill may be; V("") does not ask for drills.
    type: str
    default: 8d
  schedules:
    description:
      - The schedules and their last runs, as the stackops CLI passes them - C(name), C(procedure), C(when), and
        C(last_run) (C(run_id), C(started), C(status), C(error)) or null.
    type: list
    elements: dict
    default: []
extends_documentation_fragment:
  - stackops.runbooks.compose
  - stackops.runbooks.attributes
  - stackops.runbooks.attributes.info_module
  - stackops.runbooks.attributes.actiongroup_catalog_compose
seealso:
  - module: stackops.runbooks.pg_backup_info
  - module: stackops.runbooks.pg_pitr_info
  - module: stackops.runbooks.stack_drill_record
'''

EXAMPLES = r'''
- name: Recoverability of the shop
  stackops.runbooks.stack_status_info:
    project_dir: /srv/shop
    project_name: shop
    backup_dir: /var/backups/shop
    database: shop
    pitr_dir: /var/backups/shop-pitr
    server_name: shop
    rpo: 24h
    rto: 30m
  register: status

- name: Fail when an objective is not met
  ansible.builtin.assert:
    that: status.ok
    fail_msg: "{{ status.problems | join('; ') }}"
'''

RETURN = r'''
ok:
  description: Whether every objective is met (RV(problems) is empty).
  returned: always
  type: bool
problems:
  description: Each objective that is not met, naming what is stale or broken and what to do.
  returned: always
  type: list
  elements: str
project:
  description: The compose project whose containers were read.
  returned: always
  type: str
services:
  description: One row per service - C(service), C(containers), C(running), C(healthy), C(health), C(state), C(ok).
  returned: always
  type: list
  elements: dict
logical:
  description: C(database), C(count), C(newest) and C(newest_verified) (C(id), C(started_at), C(age_seconds),
    C(size_bytes)), C(in_progress).
  returned: always
  type: dict
pitr:
  description: C(enabled), and when enabled C(receiver_alive), C(earliest_recoverable), C(latest_recoverable),
    C(latest_recoverable_age_seconds), C(newest_verified) base backup, C(problems), and C(standby), the warm
    standby when one was set up (C(container), C(storage), C(seeded_at), C(delay), C(state); one that is not
    running adds a problem), else null.
  returned: always
  type: dict
offsite:
  description: One entry per off-site target and database - C(target), C(database), C(newest_verified), C(age_seconds),
    C(checked_at) (when the last copy run looked).
  returned: always
  type: list
  elements: dict
drills:
  description: C(last) and C(last_success) drill records, their ages, C(rto_trend) (passing drills of the last 10,
    newest first), C(count).
  returned: always
  type: dict
schedules:
  description: O(schedules) as given.
  returned: always
  type: list
  elements: dict
objectives:
  description: The objectives in seconds (C(rpo), C(rto), C(drill_max_age)).
  returned: always
  type: dict
metrics:
  description: The status in the Prometheus text exposition format, for a node_exporter textfile collector.
  returned: always
  type: str
'''

import time

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.stackops.runbooks.plugins.module_utils.compose import (
    compose_argument_spec, compose_config, describe_containers, labelled_containers, service_status)
from ansible_collections.stackops.runbooks.plugins.module_utils.drill import DrillError, objective_seconds
from ansible_collections.stackops.runbooks.plugins.module_utils.pitr_storage import Docker as PitrDocker
from ansible_collections.stackops.runbooks.plugins.module_utils.recoverability import (
    drills, judge, logical_backups, offsite_copies, pitr_state, service_rows, status_metrics)


def snapshot(module, project):
    rows, inspected = labelled_containers(module, project)
    by_service = {}
    for container in describe_containers(module, rows, inspected=inspected, images=False):
        by_service.setdefault(container['service'], []).append(container)
    return dict((name, service_status(name, members)) for name, members in by_service.items())


def main():
    spec = compose_argument_spec()
    spec.update(
        backup_dir=dict(type='path', required=True),
        database=dict(type='str', required=True),
        pitr_dir=dict(type='path'),
        server_name=dict(type='str'),
        rpo=dict(type='str', default='24h'),
        rto=dict(type='str'),
        drill_max_age=dict(type='str', default='8d'),
        schedules=dict(type='list', elements='dict', default=[]),
    )
    module = AnsibleModule(argument_spec=spec, supports_check_mode=True)
    params = module.params
    try:
        objectives = dict(rpo=objective_seconds(params['rpo'], 'stackops_rpo'),
                          rto=objective_seconds(params['rto'], 'stackops_rto'),
                          drill_max_age=objective_seconds(params['drill_max_age'], 'stackops_status_drill_max_age'))
    except DrillError as exc:
        module.fail_json(msg=str(exc))
    now = time.time()
    project = params.get('project_name') or compose_config(module, params).get('name')
    status = dict(
        project=project, services=service_rows(snapshot(module, project)),
        logical=logical_backups(params['backup_dir'], params['database'], now),
        pitr=pitr_state(params.get('pitr_dir'), params.get('server_name'), now, docker=PitrDocker(module)),
        offsite=offsite_copies(params['backup_dir'], now), drills=drills(params['backup_dir'], now),
        schedules=params['schedules'], objectives=objectives)
    status['problems'] = judge(status, objectives)
    status['ok'] = not status['problems']
    status['metrics'] = status_metrics(project, status)
    module.exit_json(changed=False, **status)


if __name__ == '__main__':
    main()
