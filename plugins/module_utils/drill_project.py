# -*- coding: utf-8 -*-
# Copyright: (c) 2026, stackops maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""One restore drill's compose project, step by step (compose_drill runs one step per module run): clean up what an
earlier drill left, prepare the data (a logical set linked into the drill's own backup directory, or a Barman
recovery into its volume), start the database, then the application, point the checks at it, tear it down.
The pieces (override, addresses, journal, catalog) are in drill.py."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import os
import time

from ansible.module_utils.six.moves.urllib.parse import urlsplit
from ansible_collections.stackops.runbooks.plugins.module_utils.backup_catalog import find_set, load_verification
from ansible_collections.stackops.runbooks.plugins.module_utils.backup_set import valid_backup_id
from ansible_collections.stackops.runbooks.plugins.module_utils.compose import compose_config, labelled_containers, run_compose
from ansible_collections.stackops.runbooks.plugins.module_utils.drill import (
    DrillError, Paths, closure, container_addresses, create_data_volume, default_services, drill_project,
    drop_journal, http_check, live_compose_files, override_model, physical_plan, published_ports, read_journal,
    remote_pitr_layout, remove_remote_pitr, remove_run_dir, render_override, teardown,
    write_journal)
from ansible_collections.stackops.runbooks.plugins.module_utils.fault import fault_point
from ansible_collections.stackops.runbooks.plugins.module_utils.pg import connect, describe_target, sql
from ansible_collections.stackops.runbooks.plugins.module_utils.pitr import Barman, Layout
from ansible_collections.stackops.runbooks.plugins.module_utils.pitr_restore import barman_recover
from ansible_collections.stackops.runbooks.plugins.module_utils.pitr_standby import load_record as load_standby_record
from ansible_collections.stackops.runbooks.plugins.module_utils.pitr_storage import (
    Docker as PitrDocker, chown_tree, remove_dead_staging)


ROLE_FLAGS = (('rolsuper', 'SUPERUSER'), ('rolinherit', 'INHERIT'), ('rolcreaterole', 'CREATEROLE'),
              ('rolcreatedb', 'CREATEDB'), ('rolcanlogin', 'LOGIN'), ('rolreplication', 'REPLICATION'),
              ('rolbypassrls', 'BYPASSRLS'))


def copy_roles(source, target):
    """Create on ``target`` the roles of ``source`` it lacks (attributes and memberships, never passwords), so a
    set restores onto the drill's fresh server as it would onto the live one (ownership and grants name them).
    ``source`` and ``target`` are open autocommit connections; returns the roles created."""
    columns = ', '.join(name for name, dummy in ROLE_FLAGS)
    query = "SELECT rolname, %s, rolconnlimit FROM pg_roles WHERE rolname NOT LIKE 'pg\\_%%' ORDER BY 1" % columns
    wanted = source.execute(query).fetchall()
    present = set(row[0] for row in target.execute('SELECT rolname FROM pg_roles').fetchall())
    created = []
    for row in wanted:
        name = row[0]
        if name in present:
            continue
        flags = [keyword if value else 'NO' + keyword for (dummy, keyword), value in zip(ROLE_FLAGS, row[1:-1])]
        target.execute(sql.SQL('CREATE ROLE {} WITH {} CONNECTION LIMIT {}').format(
            sql.Identifier(name), sql.SQL(' '.join(flags)), sql.Literal(int(row[-1]))))
        created.append(name)
    memberships = source.execute(
        'SELECT r.rolname, m.rolname, a.admin_option FROM pg_auth_members a JOIN pg_roles r ON r.oid = a.roleid '
        'JOIN pg_roles m ON m.oid = a.member ORDER BY 1, 2').fetchall()
    for role, member, admin in memberships:
        if member in created:
            target.execute(sql.SQL('GRANT {} TO {}{}').format(sql.Identifier(role), sql.Identifier(member),
                                                              sql.SQL(' WITH ADMIN OPTION' if admin else '')))
    return created


# Here, not in drill.py: the readers of the drill catalog (stack_status_info) bundle drill.py, and Barman's
# recovery would bring psycopg and the restore code into their payload.
def recover_into_volume(module, layout, backup, target, target_value, mountpoint, data_target_path, pgdata, image,
                        catch_up=True):
    """Barman recovers ``backup`` into the drill's data volume so that PostgreSQL, started on it by the drill's
    database service, replays WAL to the target and promotes; the files belong to the image's postgres user.
    ``catch_up``: the live server's newest WAL reaches the archive first; not for the copy fetched from off-site,
    which holds what was shipped and no receiver."""
    subpath = os.path.relpath(pgdata, data_target_path) if pgdata != data_target_path else ''
    dest = os.path.join(mountpoint, subpath) if subpath else mountpoint
    barman_recover(Barman(module, layout), layout, target, target_value, backup['id'], dest, pgdata, catch_up=catch_up)
    uid, gid = PitrDocker(module).image_ids(image)
    chown_tree(mountpoint, uid, gid)
    os.chmod(dest, 0o700)
    return dest


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

    def clean(self, project, keep_remote_pitr=False):
        """What an earlier drill left: its project's resources, its run directory, its journal, Barman's staging, the
        PITR copy it fetched from off-site. ``keep_remote_pitr``: this run's own fetched copy stays (it is drilled
        next)."""
        check = self.module.check_mode
        journal = read_journal(self.paths)
        own = journal and self.params.get('run_id') and journal.get('run_id') == self.params['run_id']
        done = teardown(self.module, project, check=check)
        if journal and journal.get('physical') and self.params.get('pitr_dir') and self.params.get('server_name'):
            done.extend(remove_dead_staging(Layout(self.params['pitr_dir'], self.params['server_name']), check))
        if os.path.isdir(self.paths.run):
            done.append('work directory %s' % self.paths.run)
            if not check:
                remove_run_dir(self.paths)
        if os.path.isdir(self.paths.remote_pitr) and not (keep_remote_pitr and own):
            done.append('PITR copy fetched from off-site %s' % self.paths.remote_pitr)
            if not check:
                remove_remote_pitr(self.paths)
        if journal and not check:
            drop_journal(self.paths)
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

    # ------------------------------------------------------------ start=remote_pitr

    def start_remote_pitr(self):
        """A physical drill --from-remote, before the fetch: clean up what an earlier drill left, journal this one, and
        make the Barman directory the PITR copy is fetched into (s3_pitr_fetch, then start=database recovers from
        it). Any drill's cleanup, or this one's teardown, removes it."""
        params, check = self.params, self.module.check_mode
        for name in ('pitr_dir', 'server_name'):
            if not params.get(name):
                raise DrillError('a physical drill needs %s (stackops_pitr_dir, stackops_pitr_server)' % name)
        project = drill_project(self.live_project())
        cleaned = self.clean(project)
        result = dict(changed=not check, project=project, cleaned_up=cleaned, pitr_dir=self.paths.remote_pitr)
        if check:
            return self.done(**result)
        self.journal(project, 'remote-pitr')
        remote_pitr_layout(self.paths, Layout(params['pitr_dir'], params['server_name']))
        return self.done(**result)

    def journal(self, project, backup):
        # Written before anything exists: whatever a kill leaves from here on, the next drill removes by label.
        write_journal(self.paths, dict(project=project, live_project=self.live_project(), pid=os.getpid(),
                                       physical=self.params['physical'], run_id=self.params.get('run_id'),
                                       started=time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime()), backup=backup))

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
        remote = params['physical'] and params['from_remote']
        cleaned = self.clean(project, keep_remote_pitr=remote)
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
            # Reported, never used: the drill proves the base-backup path, the one a restore falls back to.
            result['standby'] = load_standby_record(layout)
            if remote:
                layout = Layout(self.paths.remote_pitr, params['server_name'])
            if remote and check:
                # Check mode fetches nothing: which base backup the off-site copy gives is known only by fetching.
                backup = dict(id=params.get('backup_id'), kind='physical', target=params['target'],
                              target_value=params.get('target_value'))
            elif not os.path.exists(layout.server_conf):
                raise DrillError(
                    'the PITR copy fetched from off-site is not in %s; the drill role runs start=remote_pitr and '
                    'the fetch first' % layout.root if remote else
                    'PITR is not set up for %s (no %s); run `stackops pitr enable` and take a base backup '
                    '(`stackops backup --physical`) first' % (layout.server, layout.server_conf))
            else:
                chosen = physical_plan(layout, params['target'], params.get('target_value'), params.get('backup_id'))
                backup = dict(id=chosen['id'], kind='physical', started_at=chosen['begin_time'],
                              ended_at=chosen['end_time'], age_seconds=chosen['age_seconds'],
                              verified=chosen['verified'], target=params['target'],
                              target_value=params.get('target_value'))
            if remote:
                backup['from_remote'] = True
            # The whole cluster comes back: the checks ask the stack's own database.
            result['database'] = params.get('database')
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
        self.journal(project, backup['id'])
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
                                mountpoint, info['data_target'], info['pgdata'], image, catch_up=not remote)
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
