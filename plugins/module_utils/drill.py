# -*- coding: utf-8 -*-
# Copyright: (c) 2026, stackops maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Restore drills: the throwaway compose project a backup is restored into, its checks, and the drill catalog.

A drill runs the user's own compose files plus a generated override under the project name ``<project>-drill``:

- the database service gets a fresh volume on the mount that holds its data directory (a bind-mounted data
  directory and a custom PGDATA included), so the restore never lands on live storage;
- every service runs the image its live container runs (no build, no pull), with its own environment;
- nothing is published on host ports (``ports: !reset []``), ``container_name`` is dropped, host networking is
  undone, and every volume or network that names itself (``name:``/``external:``) becomes the drill's own, so the
  drill never shares a container, volume or network with the live project; other bind mounts become read-only;
- the services are reached on the drill's network at their container addresses: health URLs of the inventory are
  mapped from the host port they use to the service publishing it and its container port.

Layout under ``<backup_dir>/.drills/`` (a dot directory: the backup catalog never lists it):

- ``journal.json``: written before a drill creates anything; a drill killed at any point is torn down by the next
  one (by the compose project's labels, so nothing depends on the journal's details being complete);
- ``run/``: the override file and the drill's own backup directory, which holds a link to the one set it restores,
  so the restore's locks and journal never mix with the live database's;
- ``records/<drill id>.json``: one record per finished drill (result, RTO, phase timings, checks), newest kept.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import json
import os
import re
import shutil
import time

from ansible.module_utils.six.moves.urllib.parse import urlsplit, urlunsplit
from ansible_collections.stackops.runbooks.plugins.module_utils.backup_set import read_json, write_json
from ansible_collections.stackops.runbooks.plugins.module_utils.pitr import (
    Layout, check_target_value, choose_backup, iso, parse_ts, recovery_window, write_if_changed)

SUFFIX = '-drill'
DATA_VOLUME = 'stackops-drill-data'
LABEL = 'stackops.drill'
DEFAULT_PGDATA = '/var/lib/postgresql/data'
RECORDS_KEPT = 200
TREND = 10


class DrillError(Exception):
    """A failure whose message says what failed, where, and what to do next."""


UNIT_SECONDS = dict(s=1, m=60, h=3600, d=86400, w=604800)


def objective_seconds(value, name):
    """An objective (stackops_rpo, stackops_rto, ...) as seconds: a number of seconds or '90m', '24h', '7d', '2w';
    None when unset or empty."""
    if value is None or value == '':
        return None
    text = str(value).strip().lower()
    unit = text[-1:] if text[-1:] in UNIT_SECONDS else 's'
    number = text[:-1] if text[-1:] in UNIT_SECONDS else text
    try:
        seconds = float(number) * UNIT_SECONDS[unit]
    except ValueError:
        raise DrillError('%s = %r is not a duration such as 90m, 24h, 7d or 3600' % (name, value))
    if seconds <= 0:
        raise DrillError('%s = %r must be positive' % (name, value))
    return seconds


def check_results(http_results, sql_results):
    """One list of the checks a drill ran ({name, kind, ok, message}) from stack_http_info's and pg_sql_check_info's
    results."""
    checks = []
    for result in http_results or []:
        item = result.get('item') or {}
        if 'healthy' not in result:
            continue
        checks.append(dict(name=result.get('name') or item.get('name'), kind=item.get('kind') or 'http',
                           ok=bool(result['healthy']), message=(result.get('check') or {}).get('message'),
                           url=item.get('source_url') or result.get('url')))
    for result in sql_results or []:
        checks.append(dict(name=result.get('name'), kind='sql', ok=bool(result.get('ok')), message=result.get('message')))
    return checks


def drill_project(live_project):
    return '%s%s' % (live_project, SUFFIX)


class Paths(object):
    def __init__(self, drills_dir):
        self.root = drills_dir
        self.journal = os.path.join(drills_dir, 'journal.json')
        self.run = os.path.join(drills_dir, 'run')
        self.override = os.path.join(self.run, 'drill-override.yml')
        self.backup_dir = os.path.join(self.run, 'backups')
        self.records = os.path.join(drills_dir, 'records')
        # A physical drill --from-remote: Barman's own directory for the copy fetched from off-site. Beside run/, not
        # in it: the fetch fills it before the drill's database starts (which makes run/ afresh).
        self.remote_pitr = os.path.join(drills_dir, 'remote-pitr')


# ---------------------------------------------------------------- the override


class Reset(object):
    """A value compose must forget (``!reset``, compose v2.24+): merging an override can add, never remove."""

    def __init__(self, empty):
        self.empty = empty


def database_pgdata(service):
    environment = (service or {}).get('environment') or {}
    return environment.get('PGDATA') or DEFAULT_PGDATA


def data_target(service, pgdata):
    """The mount target holding ``pgdata`` (the longest), or ``pgdata`` itself when no mount holds it."""
    best = None
    for entry in (service or {}).get('volumes') or []:
        target = (entry.get('target') or '').rstrip('/') or '/'
        if pgdata == target or pgdata.startswith(target.rstrip('/') + '/'):
            if best is None or len(target) > len(best):
                best = target
    return best or pgdata


def own_resource(kind_config, key, live_project):
    """True when a top-level volume or network would belong to the project compose runs it under."""
    external = kind_config.get('external')
    if external:
        return False
    name = kind_config.get('name')
    return not name or name == '%s_%s' % (live_project, key)


def override_model(config, live_project, db_service, images, environment=None):
    """The drill override as a nested dict (Reset marks what compose must forget), and notes on what was changed.

    ``config`` is the live project's resolved model (``docker compose config --format json``), ``images`` maps
    services to the image id their live container runs, ``environment`` maps services to variables to set.
    """
    services = config.get('services') or {}
    if db_service not in services:
        raise DrillError('compose service %s (stackops_db_service) is not in the project %s; services: %s' % (
            db_service, live_project, ', '.join(sorted(services)) or 'none'))
    environment = environment or {}
    unknown = sorted(set(environment) - set(services))
    if unknown:
        raise DrillError('stackops_drill_environment names service(s) %s that the project does not have' % ', '.join(unknown))
    notes = []
    pgdata = database_pgdata(services[db_service])
    target = data_target(services[db_service], pgdata)
    model = dict(services={}, volumes={DATA_VOLUME: {}}, networks={})
    for name in sorted(services):
        spec = services[name] or {}
        out = {}
        if spec.get('ports'):
            out['ports'] = Reset('[]')
        if spec.get('container_name'):
            out['container_name'] = Reset('null')
        if spec.get('network_mode') == 'host':
            out['network_mode'] = Reset('null')
            notes.append('service %s uses the host network; it runs on the drill network instead' % name)
        if spec.get('external_links'):
            out['external_links'] = Reset('[]')
        mounts = []
        for entry in spec.get('volumes') or []:
            if name == db_service and (entry.get('target') or '').rstrip('/') == target.rstrip('/'):
                continue
            if entry.get('type') == 'bind' and not entry.get('read_only'):
                mounts.append(dict(entry, read_only=True))
        if name == db_service:
            mounts.append(dict(type='volume', source=DATA_VOLUME, target=target))
        if mounts:
            out['volumes'] = mounts
        if images.get(name):
            out['image'] = images[name]
            out['pull_policy'] = 'never'
        if environment.get(name):
            out['environment'] = dict((str(key), str(value)) for key, value in environment[name].items())
        out['labels'] = {LABEL: live_project}
        model['services'][name] = out
    for kind in ('volumes', 'networks'):
        for key, spec in sorted((config.get(kind) or {}).items()):
            if not own_resource(spec or {}, key, live_project):
                model[kind][key] = dict(name=Reset('null'), external=Reset('false'))
                notes.append('%s %s (%s) is the live project\'s; the drill gets its own' % (
                    kind[:-1], key, (spec or {}).get('name') or key))
    if not model['networks']:
        del model['networks']
    return model, dict(pgdata=pgdata, data_target=target, notes=notes)


def _scalar(value):
    if isinstance(value, Reset):
        return '!reset %s' % value.empty
    return json.dumps(value)


def render_yaml(value, indent=0):
    """YAML for the override: JSON flow values (valid YAML) in block mappings, plus the ``!reset`` tags JSON lacks."""
    pad = '  ' * indent
    lines = []
    if isinstance(value, dict):
        for key, inner in value.items():
            if isinstance(inner, dict) and inner:
                lines.append('%s%s:' % (pad, json.dumps(str(key))))
                lines.extend(render_yaml(inner, indent + 1))
            elif isinstance(inner, list) and inner:
                lines.append('%s%s:' % (pad, json.dumps(str(key))))
                for item in inner:
                    lines.append('%s  - %s' % (pad, json.dumps(item)))
            else:
                lines.append('%s%s: %s' % (pad, json.dumps(str(key)), _scalar(inner)))
    return lines


def render_override(model):
    return '# Written by stackops (compose_drill) for a restore drill; removed when the drill is torn down.\n' + \
        '\n'.join(render_yaml(model)) + '\n'


# ---------------------------------------------------------------- services and addresses


def closure(config, services):
    """``services`` and everything they depend on, in a stable order."""
    specs = config.get('services') or {}
    seen, todo = [], list(services)
    while todo:
        name = todo.pop(0)
        if name in seen or name not in specs:
            continue
        seen.append(name)
        todo.extend(sorted((specs[name] or {}).get('depends_on') or []))
    return seen


def published_ports(config):
    """{host port: (service, container port)} of every fixed published port of the live model."""
    found = {}
    for name, spec in sorted((config.get('services') or {}).items()):
        for port in (spec or {}).get('ports') or []:
            if not isinstance(port, dict):
                continue
            published = str(port.get('published') or '')
            if published.isdigit():
                found.setdefault(int(published), (name, int(port.get('target'))))
    return found


def map_url(url, ports, addresses):
    """The drill's address for a URL of the live stack: (mapped url, service) or (None, reason).

    The URL's port picks the service publishing it; the drill reaches that service's container port on its own
    network address."""
    parts = urlsplit(url)
    if parts.scheme not in ('http', 'https') or not parts.hostname:
        return None, 'not an http(s) URL'
    port = parts.port or (443 if parts.scheme == 'https' else 80)
    if port not in ports:
        return None, 'no service of the project publishes port %d' % port
    service, target = ports[port]
    address = addresses.get(service)
    if not address:
        return None, 'service %s has no container on the drill network' % service
    host = '[%s]' % address if ':' in address else address
    return urlunsplit((parts.scheme, '%s:%d' % (host, target), parts.path or '/', parts.query, '')), service


def http_check(item, ports, addresses, default_name):
    """One HTTP expectation ({name, url | service+port+path, status, json, body_regex, method}) pointed at the drill:
    the dict stack_http_info takes, or (None, reason)."""
    name = item.get('name') or item.get('url') or default_name
    if item.get('service'):
        address = addresses.get(item['service'])
        if not address:
            return None, 'check %s: service %s has no container on the drill network' % (name, item['service'])
        url = '%s://%s:%s%s' % (item.get('scheme') or 'http', address, item.get('port') or 80, item.get('path') or '/')
        service = item['service']
    else:
        url, service = map_url(item.get('url') or '', ports, addresses)
        if url is None:
            return None, 'check %s (%s): %s' % (name, item.get('url'), service)
    status = item.get('status', 200)
    return dict(name=name, url=url, service=service, source_url=item.get('url'), method=item.get('method') or 'GET',
                status_code=status if isinstance(status, list) else [status], json=item.get('json') or {},
                body_regex=item.get('body_regex')), None


def default_services(db_service, writers, http_services):
    names = [db_service]
    for name in list(writers or []) + list(http_services or []):
        if name not in names:
            names.append(name)
    return names


# ---------------------------------------------------------------- SQL checks


def normalise_answer(value):
    """The text a check's answer is compared as: booleans as true/false, NULL as null, the rest as str()."""
    if value is None:
        return 'null'
    if isinstance(value, bool):
        return 'true' if value else 'false'
    return str(value).strip()


def sql_expectation_met(got, expected):
    """Whether a SQL check's answer is what was expected: true/false/null in any case (psql's t/f too), numbers by
    value (3 = 3.0), anything else as text."""
    have, want = normalise_answer(got), normalise_answer(expected)
    words = dict(t='true', f='false')
    if want.lower() in ('true', 'false', 'null', 't', 'f'):
        return words.get(have.lower(), have.lower()) == words.get(want.lower(), want.lower())
    try:
        return float(have) == float(want)
    except ValueError:
        return have == want


# ---------------------------------------------------------------- docker: the drill project's resources


def _docker(module, args, what):
    docker = module.get_bin_path('docker', required=True)
    rc, out, err = module.run_command([docker] + list(args))
    if rc != 0:
        raise DrillError('docker %s failed (rc=%s) while %s: %s' % (args[0], rc, what, (err or out).strip()[-1500:]))
    return out


def project_resources(module, project):
    """(containers, volumes, networks) carrying the compose label of ``project``: [(id, name)] each."""
    label = 'label=com.docker.compose.project=%s' % project
    found = []
    for args in (['ps', '--all', '--no-trunc', '--format', '{{.ID}} {{.Names}}', '--filter', label],
                 ['volume', 'ls', '--format', '{{.Name}} {{.Name}}', '--filter', label],
                 ['network', 'ls', '--no-trunc', '--format', '{{.ID}} {{.Name}}', '--filter', label]):
        out = _docker(module, args, 'listing what drill project %s left' % project)
        found.append([tuple(line.split(' ', 1)) for line in out.splitlines() if line.strip()])
    return found


def teardown(module, project, check=False):
    """Remove every container, volume and network of the drill project (found by label, so also what a killed drill
    left); returns what was (in check mode: would be) removed, as text."""
    containers, volumes, networks = project_resources(module, project)
    done = ['container %s' % name for dummy, name in containers] + ['volume %s' % name for dummy, name in volumes] + \
        ['network %s' % name for dummy, name in networks]
    if check:
        return done
    if containers:
        _docker(module, ['rm', '--force', '--volumes'] + [ident for ident, dummy in containers],
                'removing the containers of drill project %s' % project)
    if volumes:
        _docker(module, ['volume', 'rm', '--force'] + [ident for ident, dummy in volumes],
                'removing the volumes of drill project %s' % project)
    if networks:
        _docker(module, ['network', 'rm'] + [ident for ident, dummy in networks],
                'removing the networks of drill project %s' % project)
    return done


def create_data_volume(module, project):
    """The database's fresh volume, made with compose's own labels so compose adopts it and teardown finds it;
    returns its host directory."""
    name = '%s_%s' % (project, DATA_VOLUME)
    _docker(module, ['volume', 'create', '--label', 'com.docker.compose.project=%s' % project,
                     '--label', 'com.docker.compose.volume=%s' % DATA_VOLUME, '--label', '%s=1' % LABEL, name],
            'creating the drill\'s database volume')
    out = _docker(module, ['volume', 'inspect', '--format', '{{.Driver}} {{.Mountpoint}}', name],
                  'inspecting the drill\'s database volume')
    driver, mountpoint = out.strip().split(' ', 1)
    if driver != 'local':
        raise DrillError('volume %s uses driver %s; a physical drill needs a local volume' % (name, driver))
    return name, mountpoint


def container_addresses(inspected):
    """{service: IP address on its first network} of a drill project's containers (docker inspect output)."""
    addresses = {}
    for info in sorted(inspected, key=lambda item: item.get('Name') or ''):
        labels = (info.get('Config') or {}).get('Labels') or {}
        service = labels.get('com.docker.compose.service')
        networks = ((info.get('NetworkSettings') or {}).get('Networks') or {})
        for dummy, network in sorted(networks.items()):
            if network.get('IPAddress') and service and service not in addresses:
                addresses[service] = network['IPAddress']
    return addresses


DEFAULT_FILES = ('compose.yaml', 'compose.yml', 'docker-compose.yaml', 'docker-compose.yml')
DEFAULT_OVERRIDES = ('compose.override.yaml', 'compose.override.yml', 'docker-compose.override.yaml',
                     'docker-compose.override.yml')


def live_compose_files(project_dir, compose_files):
    """The -f files of the live project as compose would read them: the given ones, else compose's default file and
    its override in the project directory (an explicit -f for the drill's override turns that lookup off)."""
    if compose_files:
        return list(compose_files)
    if not project_dir:
        raise DrillError('a drill needs the compose project directory (stackops_compose_project_dir) or its files '
                         '(stackops_compose_files)')
    found = []
    for names in (DEFAULT_FILES, DEFAULT_OVERRIDES):
        for name in names:
            if os.path.isfile(os.path.join(project_dir, name)):
                found.append(os.path.join(project_dir, name))
                break
    if not found:
        raise DrillError('no compose file (%s) in %s; set stackops_compose_files' % (', '.join(DEFAULT_FILES), project_dir))
    return found


# ---------------------------------------------------------------- journal, teardown, catalog


def write_journal(paths, entry):
    if not os.path.isdir(paths.root):
        os.makedirs(paths.root, 0o700)
    write_json(paths.journal, entry)


def read_journal(paths):
    try:
        entry = read_json(paths.journal)
    except (IOError, OSError, ValueError):
        return None
    return entry if isinstance(entry, dict) else None


def drop_journal(paths):
    if os.path.lexists(paths.journal):
        os.unlink(paths.journal)


def remove_run_dir(paths):
    if os.path.isdir(paths.run):
        shutil.rmtree(paths.run, ignore_errors=True)
        return True
    return False


def remove_remote_pitr(paths):
    if os.path.isdir(paths.remote_pitr):
        shutil.rmtree(paths.remote_pitr, ignore_errors=True)
        return True
    return False


def rewrite_conf(text, values):
    """Barman configuration ``text`` with the ``key = value`` lines of ``values`` replaced."""
    lines = []
    for line in text.splitlines():
        key = line.partition('=')[0].strip()
        lines.append('%s = %s' % (key, values[key]) if '=' in line and key in values else line)
    return '\n'.join(lines) + '\n'


def remote_pitr_layout(paths, live):
    """A Barman directory of the drill's own for the PITR copy fetched from off-site, configured as the live one
    (``live``, a Layout) but with its home, log and staging inside: the fetch and the recovery never write to the live
    archive, and nothing (cron, receive-wal) knows this configuration. Returns its Layout."""
    for path in (live.conf, live.server_conf):
        if not os.path.isfile(path):
            raise DrillError('a physical drill from remote needs the live PITR configuration (%s is missing); run '
                             '`stackops pitr enable` on this host first' % path)
    layout = Layout(paths.remote_pitr, live.server)
    for path in (layout.conf_dir, os.path.dirname(layout.log), layout.server_home):
        if not os.path.isdir(path):
            os.makedirs(path, 0o700)
    with open(live.conf) as handle:
        text = rewrite_conf(handle.read(), dict(barman_home=layout.home, log_file=layout.log,
                                                configuration_files_directory=layout.conf_dir))
    write_if_changed(layout.conf, text, mode=os.stat(live.conf).st_mode & 0o777)
    with open(live.server_conf) as handle:
        text = rewrite_conf(handle.read(), dict(staging_path=layout.staging))
    write_if_changed(layout.server_conf, text, mode=os.stat(live.server_conf).st_mode & 0o777)
    return layout


def drill_id(epoch=None):
    return 'drill-%s' % time.strftime('%Y%m%dT%H%M%SZ', time.gmtime(epoch or time.time()))


def save_record(paths, record, keep=RECORDS_KEPT):
    if not os.path.isdir(paths.records):
        os.makedirs(paths.records, 0o700)
    write_json(os.path.join(paths.records, '%s.json' % record['id']), record)
    for stale in list_record_files(paths)[:-keep] if keep else []:
        os.unlink(os.path.join(paths.records, stale))


RECORD_NAME = re.compile(r'^drill-\d{8}T\d{6}Z(-\d+)?\.json$')


def list_record_files(paths):
    try:
        names = os.listdir(paths.records)
    except OSError:
        return []
    return sorted(name for name in names if RECORD_NAME.match(name))


def unique_record_id(paths, epoch):
    base = drill_id(epoch)
    taken = set(name[:-len('.json')] for name in list_record_files(paths))
    candidate, number = base, 1
    while candidate in taken:
        number += 1
        candidate = '%s-%d' % (base, number)
    return candidate


def load_records(paths, limit=None):
    """Drill records, newest first."""
    records = []
    for name in reversed(list_record_files(paths)):
        try:
            record = read_json(os.path.join(paths.records, name))
        except (IOError, OSError, ValueError):
            continue
        if isinstance(record, dict):
            records.append(record)
        if limit and len(records) >= limit:
            break
    return records


def drill_summary(records, now=None):
    """The last drill, the last passing one, and the RTO trend (newest first) for status and metrics."""
    now = now or time.time()
    last = records[0] if records else None
    passed = [record for record in records if record.get('status') == 'passed']
    last_ok = passed[0] if passed else None
    trend = [record.get('rto_seconds') for record in records[:TREND] if record.get('status') == 'passed']
    return dict(
        last=last, last_success=last_ok,
        last_age_seconds=None if last is None else max(0, int(now - (last.get('finished_epoch') or now))),
        last_success_age_seconds=None if last_ok is None else max(0, int(now - (last_ok.get('finished_epoch') or now))),
        rto_trend=trend, count=len(records))


def drill_metrics(stack, summary):
    """Prometheus text exposition of the drill catalog (node_exporter textfile collector)."""
    label = '{stack="%s"}' % stack.replace('\\', '\\\\').replace('"', '\\"')
    last, last_ok = summary['last'], summary['last_success']
    lines = [
        '# HELP stackops_drill_last_success_timestamp Unix time the last passing restore drill finished.',
        '# TYPE stackops_drill_last_success_timestamp gauge',
        'stackops_drill_last_success_timestamp%s %s' % (label, last_ok['finished_epoch'] if last_ok else 0),
        '# HELP stackops_drill_rto_seconds Measured recovery time of the last passing drill (start to app healthy and '
        'checks passed).',
        '# TYPE stackops_drill_rto_seconds gauge',
        'stackops_drill_rto_seconds%s %s' % (label, last_ok['rto_seconds'] if last_ok else 'NaN'),
        '# HELP stackops_drill_last_passed Whether the last restore drill passed (1) or failed (0).',
        '# TYPE stackops_drill_last_passed gauge',
        'stackops_drill_last_passed%s %d' % (label, 1 if last and last.get('status') == 'passed' else 0),
    ]
    return '\n'.join(lines) + '\n'


def phase_seconds(marks):
    """Seconds per phase from the role's marks {start, fetched, restored, started, checked} (epoch floats)."""
    order = ('start', 'fetched', 'restored', 'started', 'checked')
    names = dict(fetched='fetch', restored='restore', started='start', checked='checks')
    phases = {}
    previous = marks.get('start')
    for key in order[1:]:
        if marks.get(key) is not None and previous is not None:
            phases[names[key]] = round(float(marks[key]) - float(previous), 3)
            previous = marks[key]
    return phases


# ---------------------------------------------------------------- a physical drill


def physical_plan(layout, target, target_value, backup_id=None):
    """The base backup a physical drill recovers and whether the target is inside the recoverable window."""
    check_target_value(target, target_value)
    window = recovery_window(layout)
    sets = window['backups']
    if backup_id:
        chosen = [entry for entry in sets if entry['id'] == backup_id]
        if not chosen:
            raise DrillError('base backup %s is not a complete backup of %s; see `stackops pitr status`' % (
                backup_id, layout.server))
        backup = chosen[0]
    else:
        backup = choose_backup(sets, target, target_value)
    if backup is None:
        raise DrillError('no complete base backup of %s ends before the target %s %s; take one with `stackops backup '
                         '--physical`' % (layout.server, target, target_value or ''))
    if target == 'time' and window['earliest'] is not None:
        instant = parse_ts(target_value)
        if not window['earliest'] <= instant <= (window['latest'] or 0):
            raise DrillError('target time %s is outside the recoverable window %s .. %s' % (
                target_value, iso(window['earliest']), iso(window['latest'])))
    return backup


def failed_check_messages(http_results, sql_results):
    """What each failed check of a drill says, in the order check_results() lists them."""
    return [check['message'] for check in check_results(http_results, sql_results) if not check['ok']]
