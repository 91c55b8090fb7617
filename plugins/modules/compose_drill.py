#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, stackops maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function
__metaclass__ = type

DOCUMENTATION = r'''
---
module: compose_drill
short_description: Build and tear down the throwaway compose project of a restore drill
version_added: 0.3.0
description:
  - A restore drill runs the stack's own compose files plus a generated override under the project name
    C(<project>-drill). The override gives the database service a fresh volume on the mount that holds its data
    directory (bind mounts and a custom E(PGDATA) included), pins every service to the image its live container
    runs, resets C(ports), C(container_name) and host networking, makes every volume and network that names itself
    the drill's own and turns other bind mounts read-only. Nothing is published on a host port and nothing of the
    live project is touched (docs/drill.md).
  - V(start=database) with O(state=present) first removes whatever an earlier drill left (a killed one too, found by the
    project's labels), writes a journal, then prepares the database - for a logical drill it links the chosen set
    into the drill's own backup directory (restore it with M(stackops.runbooks.pg_backup_restore) at RV(db_host));
    for O(physical=true) Barman recovers a base backup into the drill's volume - and starts the database service,
    waiting for its healthcheck and, for a physical drill, for the end of recovery.
  - V(start=application) starts the application services and waits for their own healthchecks, then returns the
    inventory's health URLs and the HTTP drill checks pointed at the drill's containers (RV(http_checks)) - a URL's
    port picks the service publishing it, the drill reaches that service's container port on the drill network.
  - O(state=absent) removes the drill project's containers, volumes and networks, its override and its journal.
author:
  - stackops maintainers (@stackops)
options:
  state:
    description:
      - V(present) builds (one step per O(start)), V(absent) tears down.
      - V(kept) leaves a finished drill running for a look (C(--keep)) - its journal is closed, so the next drill
        removes it without calling it killed; RV(remove_with) says how to remove it by hand.
    type: str
    choices: [present, absent, kept]
    default: present
  start:
    description:
      - What V(present) starts - V(database) (after cleaning up and preparing the data) or V(application).
      - V(remote_pitr), before the database of a physical drill with O(from_remote=true) - cleans up what an earlier
        drill left, journals this one and makes RV(pitr_dir), a Barman directory of the drill's own (configured as the
        live one at O(pitr_dir), with its home, log and staging inside) for M(stackops.runbooks.s3_pitr_fetch) to fetch
        the off-site copy into. V(database) then recovers from it; the teardown removes it.
    type: str
    choices: [database, application, remote_pitr]
    default: database
  drills_dir:
    description: The drill's directory (journal, override, records), C(<backup_dir>/.drills) in the drill role.
    type: path
    required: true
  run_id:
    description:
      - Identifies one drill across its steps; the journal of a drill with another run id is one that was killed (or
        kept), and RV(cleaned_up) and RV(removed) say so.
    type: str
  db_service:
    description: Compose service that runs PostgreSQL.
    type: str
    required: true
  db_port:
    description: Port PostgreSQL listens on inside its container; default the service's E(PGPORT) or 5432.
    type: int
  writer_services:
    description: Services that write to the database; started by V(start=application) when O(services) is empty.
    type: list
    elements: str
    default: []
  services:
    description:
      - Services V(start=application) starts (with what they depend on).
      - Empty - O(db_service), O(writer_services) and the services the health URLs and HTTP checks reach.
    type: list
    elements: str
    default: []
  health_urls:
    description: The inventory's health URLs (C(stackops_health_urls)), pointed at the drill by V(start=application).
    type: list
    elements: dict
    default: []
  checks:
    description:
      - Drill checks (C(stackops_drill_checks)); those with C(url) or C(service) are HTTP checks and are pointed at the
        drill like the health URLs, those with C(sql) are left to M(stackops.runbooks.pg_sql_check_info).
    type: list
    elements: dict
    default: []
  environment:
    description: Variables to set per service in the drill, e.g. a mail relay that goes nowhere.
    type: dict
    default: {}
  override_files:
    description: More compose files applied after the generated override, for what the drill must do differently.
    type: list
    elements: path
    default: []
  wait_timeout:
    description: Seconds the services (and a physical drill's recovery) may take to become healthy.
    type: int
    default: 300
  backup_dir:
    description: Backup directory holding the logical set to restore (also the one a fetch from off-site wrote).
    type: path
  backup_id:
    description: Logical set (or with O(physical=true) base backup) to restore; default the newest verified one.
    type: str
  database:
    description: Database whose newest verified set a logical drill restores when O(backup_id) is not given.
    type: str
  require_verified:
    description: Refuse a logical set that was not verified.
    type: bool
    default: true
  physical:
    description: Recover a physical base backup with Barman instead of restoring a logical set.
    type: bool
    default: false
  from_remote:
    description:
      - With O(physical=true) - recover from the PITR copy fetched from off-site into the drill's own Barman directory
        (see O(start=remote_pitr)) instead of the live archive at O(pitr_dir).
    type: bool
    default: false
  target:
    description: With O(physical=true) - V(latest) (all WAL there is) or V(time) (O(target_value)).
    type: str
    choices: [latest, time]
    default: latest
  target_value:
    description: The recovery target time, e.g. C(2026-12-01 14:01:59+00).
    type: str
  pitr_dir:
    description: Barman's directory (C(stackops_pitr_dir)); needed with O(physical=true).
    type: path
  server_name:
    description: Barman server name (C(stackops_pitr_server)); needed with O(physical=true).
    type: str
  barman_bin:
    description: Path of the C(barman) program (default looked up on E(PATH) and next to the module's Python).
    type: path
  pg_bindir:
    description: Directory of the host's PostgreSQL programs, for Barman.
    type: path
    default: /usr/lib/postgresql/15/bin
extends_documentation_fragment:
  - stackops.runbooks.compose
  - stackops.runbooks.postgres
  - stackops.runbooks.attributes
  - stackops.runbooks.attributes.changes_state
  - stackops.runbooks.attributes.actiongroup_catalog_compose_pitr_postgresql
notes:
  - Needs compose v2.24 or newer (the override's C(!reset) tags).
  - The connection options name the live server - a logical drill copies its roles (attributes and memberships, no
    passwords) onto the drill's fresh server before the restore, since the set's ownership and grants name them. The
    drill's own database is reached at its container address (RV(db_host), RV(db_port)) with the same login.
  - The compose project options name the live project; the drill project is C(<project name>-drill).
seealso:
  - module: stackops.runbooks.pg_backup_restore
  - module: stackops.runbooks.pg_sql_check_info
  - module: stackops.runbooks.stack_drill_record
'''

EXAMPLES = r'''
- name: Start the drill's database on a fresh volume, with the newest verified set linked for the restore
  stackops.runbooks.compose_drill:
    project_dir: /srv/shop
    project_name: shop
    drills_dir: /var/backups/shop/.drills
    db_service: db
    backup_dir: /var/backups/shop
    database: shop
    login_user: shop
    login_password_file: /srv/shop/secrets/db_password
  register: drill_db

- name: Start the application on the restored copy
  stackops.runbooks.compose_drill:
    project_dir: /srv/shop
    project_name: shop
    drills_dir: /var/backups/shop/.drills
    db_service: db
    start: application
    writer_services: [backend, worker]
    health_urls:
      - {name: backend, url: "http://127.0.0.1:56210/healthz"}
  register: drill_app

- name: Tear it down
  stackops.runbooks.compose_drill:
    project_dir: /srv/shop
    project_name: shop
    drills_dir: /var/backups/shop/.drills
    db_service: db
    state: absent
'''

RETURN = r'''
project:
  description: The drill's compose project name.
  returned: always
  type: str
pitr_dir:
  description: The drill's own Barman directory the off-site PITR copy is fetched into.
  returned: when state=present and start=remote_pitr
  type: str
live_project:
  description: The live project's name (the drill's is this plus C(-drill)).
  returned: when state=present and start=database
  type: str
compose_files:
  description: The drill's C(-f) files - the live project's, the generated override, then O(override_files).
  returned: when state=present
  type: list
  elements: str
override:
  description: The generated override (its text in check mode, its path otherwise).
  returned: when state=present and start=database
  type: str
notes:
  description: What the override changed beyond the rules (host networking undone, a named volume made the drill's).
  returned: when state=present and start=database
  type: list
  elements: str
db_host:
  description: Address of the drill's database container on the drill network.
  returned: when state=present and start=database, not in check mode
  type: str
db_port:
  description: Port PostgreSQL listens on inside the drill's database container.
  returned: when state=present and start=database
  type: int
backup:
  description: The set or base backup the drill restores (C(id), C(kind), C(database), C(started_at), C(age_seconds)).
  returned: when state=present and start=database
  type: dict
standby:
  description: With O(physical=true), the stack's warm standby record (C(storage), C(seeded_at), C(delay), C(state))
    when one was set up, else null. The drill measures the base-backup path; it never touches the standby, which
    is what C(stackops restore --to-latest) would promote (docs/pitr.md "Warm standby").
  returned: when state=present and start=database and physical=true
  type: dict
backup_dir:
  description: The drill's own backup directory holding a link to the set (logical drills); restore from here.
  returned: when state=present and start=database and physical=false
  type: str
database:
  description: Database the logical set holds (the restore target); with O(physical=true), O(database).
  returned: when state=present and start=database
  type: str
services:
  description: Services started by V(start=application) (with those they depend on).
  returned: when state=present and start=application
  type: list
  elements: str
addresses:
  description: Service name to container address on the drill network.
  returned: when state=present and start=application
  type: dict
http_checks:
  description: Health URLs and HTTP drill checks pointed at the drill (C(name), C(url), C(service), C(source_url),
    C(method), C(status_code), C(json), C(body_regex)), for M(stackops.runbooks.stack_http_info).
  returned: when state=present and start=application
  type: list
  elements: dict
unmapped:
  description: Health URLs the drill cannot reach (no service of the project publishes their port), with the reason.
  returned: when state=present and start=application
  type: list
  elements: str
roles_created:
  description: Roles of the live server created on the drill's fresh server (logical drills).
  returned: when state=present and start=database and physical=false, not in check mode
  type: list
  elements: str
cleaned_up:
  description: What an earlier drill (a killed one, or one kept with C(--keep)) had left and this run removed.
  returned: when state=present and start is database or remote_pitr
  type: list
  elements: str
remove_with:
  description: The command that removes a kept drill by hand.
  returned: when state=kept
  type: str
removed:
  description: What O(state=absent) removed (in check mode would remove).
  returned: when state=absent
  type: list
  elements: str
duration_seconds:
  description: Seconds this step took.
  returned: always
  type: float
'''

import time

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.stackops.runbooks.plugins.module_utils.backup_set import BackupError
from ansible_collections.stackops.runbooks.plugins.module_utils.compose import compose_argument_spec
from ansible_collections.stackops.runbooks.plugins.module_utils.drill import DrillError, drill_project
from ansible_collections.stackops.runbooks.plugins.module_utils.drill_project import Drill
from ansible_collections.stackops.runbooks.plugins.module_utils.pg import pg_connection_spec, prepare
from ansible_collections.stackops.runbooks.plugins.module_utils.pitr import PitrError


def main():
    spec = dict(
        state=dict(type='str', choices=['present', 'absent', 'kept'], default='present'),
        start=dict(type='str', choices=['database', 'application', 'remote_pitr'], default='database'),
        drills_dir=dict(type='path', required=True),
        run_id=dict(type='str'),
        db_service=dict(type='str', required=True),
        db_port=dict(type='int'),
        writer_services=dict(type='list', elements='str', default=[]),
        services=dict(type='list', elements='str', default=[]),
        health_urls=dict(type='list', elements='dict', default=[]),
        checks=dict(type='list', elements='dict', default=[]),
        environment=dict(type='dict', default={}),
        override_files=dict(type='list', elements='path', default=[]),
        wait_timeout=dict(type='int', default=300),
        backup_dir=dict(type='path'),
        backup_id=dict(type='str'),
        database=dict(type='str'),
        require_verified=dict(type='bool', default=True),
        physical=dict(type='bool', default=False),
        from_remote=dict(type='bool', default=False),
        target=dict(type='str', choices=['latest', 'time'], default='latest'),
        target_value=dict(type='str'),
        pitr_dir=dict(type='path'),
        server_name=dict(type='str'),
        barman_bin=dict(type='path'),
        pg_bindir=dict(type='path', default='/usr/lib/postgresql/15/bin'),
    )
    spec.update(compose_argument_spec())
    spec.update(pg_connection_spec())
    module = AnsibleModule(argument_spec=spec, supports_check_mode=True)
    prepare(module)
    drill = Drill(module)
    try:
        if module.params['state'] == 'absent':
            project = drill_project(drill.live_project())
            removed = drill.clean(project)
            drill.done(changed=bool(removed) and not module.check_mode, project=project, removed=removed)
        if module.params['state'] == 'kept':
            drill.keep()
        if module.params['start'] == 'remote_pitr':
            drill.start_remote_pitr()
        if module.params['start'] == 'database':
            drill.start_database()
        drill.start_application()
    except (DrillError, BackupError, PitrError) as exc:
        module.fail_json(msg=str(exc), duration_seconds=round(time.monotonic() - drill.started, 3))


if __name__ == '__main__':
    main()
