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
    description: What V(present) starts - V(database) (after cleaning up and preparing the data) or V(application).
    type: str
    choices: [database, application]
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
backup_dir:
  description: The drill's own backup directory holding a link to the set (logical drills); restore from here.
  returned: when state=present and start=database and physical=false
  type: str
database:
  description: Database the logical set holds (the restore target).
  returned: when state=present and start=database and physical=false
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
  returned: when state=present and start=database
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

import os
import time

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.six.moves.urllib.parse import urlsplit
from ansible_collections.stackops.runbooks.plugins.module_utils.backup_catalog import find_set, load_verification
from ansible_collections.stackops.runbooks.plugins.module_utils.backup_set import BackupError, valid_backup_id
from ansible_collections.stackops.runbooks.plugins.module_utils.compose import (
    compose_argument_spec, compose_config, labelled_containers, run_compose)
from ansible_collections.stackops.runbooks.plugins.module_utils.drill import (
    DrillError, Paths, closure, container_addresses, copy_roles, create_data_volume, default_services, drill_project,
    drop_journal, http_check, live_compose_files, override_model, physical_plan, published_ports, read_journal,
    recover_into_volume, remove_run_dir, render_override, teardown, write_journal)
from ansible_collections.stackops.runbooks.plugins.module_utils.fault import fault_point
from ansible_collections.stackops.runbooks.plugins.module_utils.pg import connect, describe_target, pg_connection_spec, prepare
from ansible_collections.stackops.runbooks.plugins.module_utils.pitr import Layout, PitrError, remove_dead_staging


class Drill(object):
    def __init__(self, module):
        self.module = module
        self.params = module.params
        self.paths = Paths(self.params['drills_dir'])
        self.started = time.monotonic()
        self._config = None

    @property
    def live_config(self):
        if self._config is None:
            self._config = compose_config(self.module, self.params)
        return self._config

    def live_project(self):
        name = self.params.get('project_name') or self.live_config.get('name')
        if not name:
            raise DrillError('cannot tell the compose project name; set stackops_compose_project_name')
        return name

    def drill_params(self, project):
        files = live_compose_files(self.params.get('project_dir'), self.params['compose_files'])
        return dict(project_dir=self.params.get('project_dir'), project_name=project, env_files=self.params['env_files'],
                    compose_files=files + [self.paths.override] + list(self.params['override_files']),
                    profiles=self.params['profiles'])

    def db_port(self):
        if self.params.get('db_port'):
            return self.params['db_port']
        spec = (self.live_config.get('services') or {}).get(self.params['db_service']) or {}
        return int((spec.get('environment') or {}).get('PGPORT') or 5432)

    def live_images(self, project):
        """The image id each service's live container runs: the drill runs exactly that, never a build or a pull."""
        dummy, inspected = labelled_containers(self.module, project)
        images = {}
        for info in inspected:
            service = ((info.get('Config') or {}).get('Labels') or {}).get('com.docker.compose.service')
            if service and info.get('Image') and service not in images:
                images[service] = info['Image']
        return images

    def done(self, **result):
        result['duration_seconds'] = round(time.monotonic() - self.started, 3)
        self.module.exit_json(**result)

    # ------------------------------------------------------------ absent

    def clean(self, project):
        """What an earlier drill left: its project's resources, its run directory, its journal, Barman's staging."""
        check = self.module.check_mode
        journal = read_journal(self.paths)
        done = teardown(self.module, project, check=check)
        if journal and journal.get('physical') and self.params.get('pitr_dir') and self.params.get('server_name'):
            done.extend(remove_dead_staging(Layout(self.params['pitr_dir'], self.params['server_name']), check))
        if os.path.isdir(self.paths.run):
            done.append('work directory %s' % self.paths.run)
            if not check:
                remove_run_dir(self.paths)
        if journal and not check:
            drop_journal(self.paths)
        own = journal and self.params.get('run_id') and journal.get('run_id') == self.params['run_id']
        if journal and not own:
            done.insert(0, 'the drill started %s (pid %s) had not finished: it was killed; removed what it left' % (
                journal.get('started'), journal.get('pid')))
        elif done and not own:
            done.insert(0, 'a drill kept for inspection (--keep): removed it')
        return done

    def keep(self):
        """Leave the drill running for a look (--keep): its journal is closed, the next drill still removes it."""
        project = drill_project(self.live_project())
        if not self.module.check_mode:
            drop_journal(self.paths)
        drill = self.drill_params(project)
        command = 'docker compose -p %s down --volumes' % project
        self.done(changed=not self.module.check_mode, project=project, compose_files=drill['compose_files'],
                  remove_with=command)

    # ------------------------------------------------------------ start=database

    def choose_set(self):
        params = self.params
        if not params.get('backup_dir'):
            raise DrillError('a logical drill needs backup_dir (stackops_backup_dir)')
        if params.get('backup_id') and not valid_backup_id(params['backup_id']):
            raise DrillError('backup id %r is not a backup id' % params['backup_id'])
        set_dir, manifest = find_set(params['backup_dir'], params.get('backup_id'), params.get('database'),
                                     verified_only=params['require_verified'] and not params.get('backup_id'))
        if params['require_verified'] and not (load_verification(set_dir) or {}).get('verified'):
            raise DrillError('backup %s has not been verified; verify it first (stackops backup verifies every new set) '
                             'or set stackops_drill_require_verified=false' % manifest['id'])
        return set_dir, manifest

    def link_set(self, set_dir, manifest):
        os.makedirs(self.paths.backup_dir, 0o700)
        os.symlink(os.path.abspath(set_dir), os.path.join(self.paths.backup_dir, manifest['id']))

    def start_database(self):
        params, check = self.params, self.module.check_mode
        live = self.live_project()
        project = drill_project(live)
        cleaned = self.clean(project)
        model, info = override_model(self.live_config, live, params['db_service'],
                                     {} if check else self.live_images(live), params['environment'])
        override_text = render_override(model)
        result = dict(changed=not check, project=project, live_project=live, notes=info['notes'], db_port=self.db_port(),
                      cleaned_up=cleaned, compose_files=self.drill_params(project)['compose_files'])
        layout = backup = None
        if params['physical']:
            for name in ('pitr_dir', 'server_name'):
                if not params.get(name):
                    raise DrillError('a physical drill needs %s (stackops_pitr_dir, stackops_pitr_server)' % name)
            layout = Layout(params['pitr_dir'], params['server_name'])
            if not os.path.exists(layout.server_conf):
                raise DrillError('PITR is not set up for %s (no %s); run `stackops pitr enable` and take a base backup '
                                 '(`stackops backup --physical`) first' % (layout.server, layout.server_conf))
            chosen = physical_plan(layout, params['target'], params.get('target_value'), params.get('backup_id'))
            backup = dict(id=chosen['id'], kind='physical', started_at=chosen['begin_time'], ended_at=chosen['end_time'],
                          age_seconds=chosen['age_seconds'], verified=chosen['verified'], target=params['target'],
                          target_value=params.get('target_value'))
        else:
            set_dir, manifest = self.choose_set()
            verification = load_verification(set_dir) or {}
            backup = dict(id=manifest['id'], kind='logical', database=manifest['database'],
                          started_at=manifest['started_at'], verified=bool(verification.get('verified')),
                          size_bytes=manifest['size_bytes'])
            result.update(database=manifest['database'], backup_dir=self.paths.backup_dir)
        result['backup'] = backup
        if check:
            result.update(override=override_text, changed=True)
            return self.done(**result)
        # Written before anything exists: whatever a kill leaves from here on, the next drill removes by label.
        write_journal(self.paths, dict(project=project, live_project=live, pid=os.getpid(), physical=params['physical'],
                                       run_id=params.get('run_id'),
                                       started=time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime()), backup=backup['id']))
        os.makedirs(self.paths.run, 0o700)
        with open(self.paths.override, 'w') as handle:
            handle.write(override_text)
        if not params['physical']:
            self.link_set(set_dir, manifest)
        volume, mountpoint = create_data_volume(self.module, project)
        if params['physical']:
            spec = self.live_config['services'][params['db_service']]
            image = self.live_images(live).get(params['db_service']) or spec.get('image')
            if not image:
                raise DrillError('service %s has no container and no image to take the postgres user from; start the '
                                 'stack once (stackops startup)' % params['db_service'])
            recover_into_volume(self.module, layout, chosen, params['target'], params.get('target_value'),
                                mountpoint, info['data_target'], info['pgdata'], image)
        fault_point('drill-database')
        drill = self.drill_params(project)
        self.up(drill, [params['db_service']], 'the drill\'s database service %s' % params['db_service'])
        dummy, inspected = labelled_containers(self.module, project, [params['db_service']])
        address = container_addresses(inspected).get(params['db_service'])
        if not address:
            raise DrillError('the drill\'s database service %s has no address on the drill network' % params['db_service'])
        self.wait_database(address, result['db_port'], params['physical'])
        if not params['physical']:
            result['roles_created'] = self.copy_live_roles(address, result['db_port'])
        result.update(db_host=address, override=self.paths.override, data_volume=volume)
        return self.done(**result)

    def up(self, drill, services, what):
        args = ['up', '--detach', '--no-build', '--wait', '--wait-timeout', str(self.params['wait_timeout'])]
        rc, out, err = run_compose(self.module, drill, args + list(services), check_rc=False)
        if rc != 0:
            dummy, logs, dummy2 = run_compose(self.module, drill, ['logs', '--no-color', '--tail', '20'] + list(services),
                                              check_rc=False)
            raise DrillError('%s did not become healthy in drill project %s: %s\n--- last log lines ---\n%s' % (
                what, drill['project_name'], (err or out).strip()[-1500:], logs.strip()[-3000:]))

    def wait_database(self, address, port, physical):
        """Until the restored server accepts the stack's login, and a recovered one has left recovery (promoted)."""
        # The maintenance database: the stack's own may exist only once the set is restored.
        params = dict(self.params, login_host=address, login_port=port, login_db='postgres')
        deadline = time.monotonic() + self.params['wait_timeout']
        last = None
        while True:
            try:
                with connect(params, application_name='stackops-drill') as conn:
                    recovering = conn.execute('SELECT pg_is_in_recovery()').fetchone()[0]
                if not (physical and recovering):
                    return
                last = 'still in recovery'
            except Exception as exc:  # pylint: disable=broad-except
                last = str(exc).strip()
            if time.monotonic() > deadline:
                raise DrillError('the drill\'s database at %s:%s did not %s within %ss: %s' % (
                    address, port, 'finish recovery' if physical else 'accept connections', self.params['wait_timeout'],
                    last))
            time.sleep(0.5)

    def copy_live_roles(self, address, port):
        """The live server's roles, which the set's ownership and grants name, onto the drill's fresh server: a
        restore finds them on the live server too. Without the live server the drill goes on without them."""
        try:
            with connect(self.params, application_name='stackops-drill') as live, \
                    connect(dict(self.params, login_host=address, login_port=port, login_db='postgres'),
                            application_name='stackops-drill') as drill:
                return copy_roles(live, drill)
        except Exception as exc:  # pylint: disable=broad-except
            self.module.warn('the drill could not copy the roles of the live server %s (%s); a set whose grants name '
                             'roles the image does not create will not restore' % (describe_target(self.params), exc))
            return []

    # ------------------------------------------------------------ start=application

    def start_application(self):
        params, check = self.params, self.module.check_mode
        live = self.live_project()
        project = drill_project(live)
        drill = self.drill_params(project)
        ports = published_ports(self.live_config)
        wanted = [dict(item, _kind='health') for item in params['health_urls']] + \
            [item for item in params['checks'] if not item.get('sql')]
        reached = [ports[port][0] for port in sorted(ports)
                   if any(self.url_port(item) == port for item in wanted)] + \
            [item['service'] for item in wanted if item.get('service')]
        services = list(params['services']) or default_services(params['db_service'], params['writer_services'], reached)
        unknown = sorted(set(services) - set(self.live_config.get('services') or {}))
        if unknown:
            raise DrillError('service(s) %s are not in the project %s' % (', '.join(unknown), live))
        started = closure(self.live_config, services)
        if check:
            return self.done(changed=True, project=project, compose_files=drill['compose_files'], services=started,
                             addresses={}, http_checks=[], unmapped=[])
        self.up(drill, services, 'service(s) %s' % ', '.join(services))
        fault_point('drill-application')
        dummy, inspected = labelled_containers(self.module, project)
        addresses = container_addresses(inspected)
        http_checks, unmapped = [], []
        for index, item in enumerate(wanted):
            mapped, problem = http_check(item, ports, addresses, 'check %d' % (index + 1))
            if mapped is None:
                if item.get('_kind') != 'health':
                    # A check the operator asked for and the drill cannot run is a failed drill, not a skipped check.
                    raise DrillError('%s; give the check service and port (the service\'s container port) instead '
                                     'of a URL' % problem)
                unmapped.append(problem)
                continue
            mapped['kind'] = item.get('_kind') or 'check'
            http_checks.append(mapped)
        return self.done(changed=True, project=project, compose_files=drill['compose_files'], services=started,
                         addresses=addresses, http_checks=http_checks, unmapped=unmapped)

    @staticmethod
    def url_port(item):
        if not item.get('url'):
            return None
        parts = urlsplit(item['url'])
        try:
            return parts.port or (443 if parts.scheme == 'https' else 80)
        except ValueError:
            return None


def main():
    spec = dict(
        state=dict(type='str', choices=['present', 'absent', 'kept'], default='present'),
        start=dict(type='str', choices=['database', 'application'], default='database'),
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
        if module.params['start'] == 'database':
            drill.start_database()
        drill.start_application()
    except (DrillError, BackupError, PitrError) as exc:
        module.fail_json(msg=str(exc), duration_seconds=round(time.monotonic() - drill.started, 3))


if __name__ == '__main__':
    main()
