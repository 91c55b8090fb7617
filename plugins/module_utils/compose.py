# -*- coding: utf-8 -*-
# Copyright: (c) 2026, stackops maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Docker Compose v2 CLI plumbing shared by the modules.

Modules talk to compose through the ``docker compose`` CLI rather than the Python
SDK, because the CLI is what operators run by hand and it applies the same project
name, env files and profiles they would.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import calendar
import json
import re
import subprocess
import time

from ansible_collections.stackops.runbooks.plugins.module_utils.checks import CRITICAL, OK, WARNING, make_check


# stackops_db_host of a database that publishes no port (docs/inventory.md): 'compose:<project>/<service>'.
SERVICE_HOST_PREFIX = 'compose:'


class ServiceAddressError(Exception):
    pass


def service_host(project, service):
    """The login_host that names a compose service's container instead of an address (see service_address)."""
    return '%s%s/%s' % (SERVICE_HOST_PREFIX, project, service)


def parse_service_host(host):
    """(project, service) of a service_host() value, or None for an ordinary host name or address."""
    if not isinstance(host, str) or not host.startswith(SERVICE_HOST_PREFIX):
        return None
    project, sep, service = host[len(SERVICE_HOST_PREFIX):].partition('/')
    if not (project and sep and service):
        raise ServiceAddressError('%r names no compose service: write compose:<project>/<service>' % host)
    return project, service


def service_address(project, service):
    """The address a client on the docker host reaches ``service`` of compose ``project`` at, without a published
    port: its running container's IP on its compose network (the network sorted first; loopback for host
    networking). Looked up each time it is asked for, because the address changes when the container is recreated.
    The one place this lookup lives: PostgreSQL connections (pg.connect), the client tools on the host and anything
    else that must reach an unpublished service call it."""
    def docker(*args):
        try:
            done = subprocess.run(('docker',) + args, capture_output=True, text=True, timeout=60, check=False)
        except (OSError, subprocess.SubprocessError) as exc:
            raise ServiceAddressError('docker %s: %s' % (args[0], exc))
        if done.returncode != 0:
            raise ServiceAddressError('docker %s failed (rc=%s): %s' % (args[0], done.returncode, done.stderr.strip()))
        return done.stdout
    ids = docker('ps', '--quiet', '--no-trunc', '--filter', 'status=running',
                 '--filter', 'label=com.docker.compose.project=%s' % project,
                 '--filter', 'label=com.docker.compose.service=%s' % service,
                 '--filter', 'label=com.docker.compose.oneoff=False').split()
    if not ids:
        raise ServiceAddressError('service %s of compose project %s has no running container, so its address on the '
                                  'compose network is unknown; start it (stackops startup)' % (service, project))
    info = json.loads(docker('inspect', sorted(ids)[0]))[0]
    settings = info.get('NetworkSettings') or {}
    for name in sorted(settings.get('Networks') or {}):
        address = (settings['Networks'][name] or {}).get('IPAddress')
        if address:
            return address
    if ((info.get('HostConfig') or {}).get('NetworkMode')) == 'host':
        return '127.0.0.1'
    raise ServiceAddressError('the container of service %s (compose project %s) has no IP address on any network'
                              % (service, project))


def compose_argument_spec():
    """Argument spec fragment that locates a compose project."""
    return dict(
        project_dir=dict(type='path'),
        project_name=dict(type='str'),
        env_files=dict(type='list', elements='path', default=[]),
        compose_files=dict(type='list', elements='path', default=[]),
        profiles=dict(type='list', elements='str', default=[]),
    )


def docker_engine(module):
    """(server version, None) when the docker engine answers, else (None, why not and what to do)."""
    docker = module.get_bin_path('docker')
    if not docker:
        return None, 'docker CLI not installed; install docker and start it'
    rc, out, err = module.run_command([docker, 'version', '--format', '{{.Server.Version}}'])
    if rc != 0 or not out.strip():
        return None, 'not answering (%s); start dockerd and retry' % (' '.join((err or out).split()) or 'rc=%d' % rc)
    return out.strip(), None


def compose_v2(module):
    """(version, None) when ``docker compose`` is v2 or later, else (version or None, why not and what to do)."""
    docker = module.get_bin_path('docker')
    rc, out, err = module.run_command([docker, 'compose', 'version', '--short']) if docker else (1, '', 'not found')
    version = out.strip().lstrip('v')
    if rc != 0 or not version:
        return None, '%s; install the docker compose v2 plugin (docker-compose-plugin)' % (
            ' '.join((err or out).split()) or 'not found')
    if not re.match(r'^[2-9]\d*\.|^\d{2,}\.', version):
        return version, ('version %s; install the docker compose v2 plugin (docker-compose-plugin), the old '
                         'docker-compose 1.x is not enough' % version)
    return version, None


def compose_command(module, params, args):
    """argv for ``docker compose <project options> <args>``: the one place a compose command line is built."""
    docker = module.get_bin_path('docker', required=True)
    argv = [docker, 'compose']
    if params.get('project_dir'):
        argv += ['--project-directory', params['project_dir']]
    if params.get('project_name'):
        argv += ['-p', params['project_name']]
    for env_file in params.get('env_files') or []:
        argv += ['--env-file', env_file]
    for compose_file in params.get('compose_files') or []:
        argv += ['-f', compose_file]
    for profile in params.get('profiles') or []:
        argv += ['--profile', profile]
    return argv + list(args)


def run_compose(module, params, args, check_rc=True, **kwargs):
    """Run a compose command; on failure, fail with what ran, where, and its stderr."""
    argv = compose_command(module, params, args)
    rc, out, err = module.run_command(argv, **kwargs)
    if check_rc and rc != 0:
        module.fail_json(
            msg='docker compose %s failed (rc=%s) for project %s: %s' % (
                ' '.join(args[:2]), rc, params.get('project_name') or params.get('project_dir'), err.strip() or out.strip()),
            rc=rc, stdout=out, stderr=err, cmd=argv)
    return rc, out, err


def parse_ps_json(text):
    """``docker compose ps --format json`` prints a JSON array (old) or one object per line (new)."""
    text = text.strip()
    if not text:
        return []
    if text.startswith('['):
        return json.loads(text)
    return [json.loads(line) for line in text.splitlines() if line.strip()]


# --- Read-side helpers (status, inspect, dependency order) -----------------------------------
# Added for compose_status and the lifecycle roles; the functions above keep their signatures.

def compose_services(module, params):
    """Service names the compose file defines (respecting env files and overrides)."""
    _rc, out, _err = run_compose(module, params, ['config', '--services'])
    return [line.strip() for line in out.splitlines() if line.strip()]


def compose_config(module, params):
    """The fully resolved compose model as a dict (``docker compose config --format json``)."""
    _rc, out, _err = run_compose(module, params, ['config', '--format', 'json'])
    try:
        return json.loads(out)
    except ValueError as exc:
        module.fail_json(msg='docker compose config --format json for project %s printed no JSON (%s); '
                             'compose v2.20 or newer is required' % (params.get('project_name') or params.get('project_dir'), exc))
    return None


def compose_ps(module, params, services=None):
    """Every container of the project (including stopped ones) as compose reports them."""
    _rc, out, _err = run_compose(module, params, ['ps', '--all', '--format', 'json'] + list(services or []))
    return parse_ps_json(out)


def docker_inspect(module, ids, kind='container'):
    """``docker inspect`` for several objects in one call; objects that vanished meanwhile are skipped."""
    ids = [item for item in ids if item]
    if not ids:
        return []
    docker = module.get_bin_path('docker', required=True)
    rc, out, err = module.run_command([docker, kind, 'inspect'] + ids)
    try:
        return json.loads(out or '[]')
    except ValueError:
        if rc != 0:
            module.fail_json(msg='docker %s inspect failed (rc=%s): %s' % (kind, rc, err.strip()), rc=rc, stderr=err)
        raise


def replica_limit(config, service):
    """(most containers the service can run at once or None for no limit, reasons) from a resolved compose model.

    A fixed host port binds once per port of a published range, and a ``container_name`` exists once: compose
    creates the extra container anyway and leaves it in state ``created`` when it cannot start, so scale and
    rolling checks refuse before acting.
    """
    spec = ((config or {}).get('services') or {}).get(service) or {}
    limit, reasons = None, []
    if spec.get('container_name'):
        limit = 1
        reasons.append('container_name %s' % spec['container_name'])
    for port in spec.get('ports') or []:
        published = str(port.get('published') or '') if isinstance(port, dict) else ''
        if not published:
            continue
        low, _sep, high = published.partition('-')
        try:
            size = int(high) - int(low) + 1 if high else 1
        except ValueError:
            size = 1
        limit = size if limit is None else min(limit, size)
        reasons.append('fixed host port %s%s' % (('%s:' % port['host_ip']) if port.get('host_ip') else '', published))
    return limit, reasons


def scale_plan(current, target, step):
    """Counts from current to target, at most ``step`` apart, ending at target (empty when already there)."""
    current, target, step = int(current), int(target), int(step)
    if step < 1:
        raise ValueError('step must be >= 1, got %d' % step)
    counts = []
    while current != target:
        current = min(target, current + step) if target > current else max(target, current - step)
        counts.append(current)
    return counts


def check_scale_request(service, replicas, step, allow_zero, allow_zero_setting='allow_zero=true'):
    """Reasons a scale request is refused before anything is looked at (empty when it is acceptable);
    ``allow_zero_setting`` is how the caller allows scaling to zero (caller_words.setting())."""
    problems = []
    if not service:
        problems.append('no service given: set stackops_scaling_service (the compose service or Kubernetes workload)')
    if replicas is None or int(replicas) < 0 or step is None or int(step) < 1:
        problems.append('replicas must be >= 0 and step >= 1 (got replicas=%s, step=%s)' % (replicas, step))
    elif int(replicas) == 0 and not allow_zero:
        problems.append('refusing to scale %s to 0: that takes it down entirely; set %s if that is what you want' % (
            service, allow_zero_setting))
    return problems


def depends_on_map(config):
    """service -> list of services it depends on, from a resolved compose model."""
    services = (config or {}).get('services') or {}
    deps = {}
    for name, spec in services.items():
        # Long syntax is a mapping, short syntax a list; sorted() yields the names of both.
        deps[name] = sorted((spec or {}).get('depends_on') or [])
    return deps


def dependency_tiers(deps):
    """Group services into start order tiers: every service's dependencies sit in earlier tiers.

    Raises ValueError naming the services of a dependency cycle or an unknown dependency.
    """
    remaining = dict((name, set(parents)) for name, parents in deps.items())
    for name, parents in remaining.items():
        unknown = parents - set(remaining)
        if unknown:
            raise ValueError('service %s depends on undefined service(s) %s' % (name, ', '.join(sorted(unknown))))
    tiers = []
    placed = set()
    while remaining:
        ready = sorted(name for name, parents in remaining.items() if parents <= placed)
        if not ready:
            raise ValueError('dependency cycle between services %s' % ', '.join(sorted(remaining)))
        tiers.append(ready)
        placed.update(ready)
        for name in ready:
            del remaining[name]
    return tiers


def parse_docker_time(text):
    """Seconds since the epoch for a Docker RFC 3339 timestamp (nanoseconds allowed); None when unset."""
    if not text or text.startswith('0001-01-01'):
        return None
    match = re.match(r'^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(\.\d+)?(Z|[+-]\d\d:\d\d)$', text.strip())
    if not match:
        return None
    seconds = calendar.timegm(time.strptime(match.group(1), '%Y-%m-%dT%H:%M:%S'))
    if match.group(2):
        seconds += float('0' + match.group(2)[:10])
    zone = match.group(3)
    if zone != 'Z':
        sign = 1 if zone[0] == '+' else -1
        seconds -= sign * (int(zone[1:3]) * 3600 + int(zone[4:6]) * 60)
    return seconds


def describe_containers(module, ps_entries, inspected=None, images=True):
    """Merge compose ps rows with docker inspect: restart count, start time, uptime, image id and digests.

    ``inspected`` is the ``docker inspect`` output of the rows' containers when the caller already has it;
    with ``images=False`` the image digests are not looked up (one docker call less, ``image_digests`` empty).
    """
    if inspected is None:
        inspected = docker_inspect(module, [row.get('ID') for row in ps_entries])
    inspected = dict((item.get('Id', '')[:12], item) for item in inspected)
    image_ids = sorted(set(item.get('Image') for item in inspected.values() if item.get('Image'))) if images else []
    image_info = dict((item.get('Id'), item) for item in docker_inspect(module, image_ids, kind='image'))
    now = time.time()
    containers = []
    for row in ps_entries:
        info = inspected.get((row.get('ID') or '')[:12], {})
        state = info.get('State') or {}
        started = parse_docker_time(state.get('StartedAt'))
        image_id = info.get('Image')
        running = (row.get('State') or state.get('Status')) == 'running'
        containers.append(dict(
            name=row.get('Name'),
            id=row.get('ID'),
            service=row.get('Service'),
            number=int(((info.get('Config') or {}).get('Labels') or {}).get('com.docker.compose.container-number') or 0),
            config_hash=((info.get('Config') or {}).get('Labels') or {}).get('com.docker.compose.config-hash'),
            state=row.get('State') or state.get('Status'),
            health=row.get('Health') or (state.get('Health') or {}).get('Status') or '',
            exit_code=row.get('ExitCode', state.get('ExitCode')),
            restart_count=info.get('RestartCount', 0),
            restart_policy=((info.get('HostConfig') or {}).get('RestartPolicy') or {}).get('Name') or 'no',
            image=row.get('Image'),
            # The reference the container was created from; ps shows a bare id once that tag has moved on.
            image_ref=(info.get('Config') or {}).get('Image') or row.get('Image'),
            image_id=image_id,
            image_digests=(image_info.get(image_id) or {}).get('RepoDigests') or [],
            started_at=state.get('StartedAt'),
            uptime_seconds=round(now - started, 1) if started and running else None,
            status=row.get('Status'),
        ))
    return containers


def labelled_containers(module, project, services=None):
    """(ps-like rows, docker inspect output) of a project's containers, found by compose's labels.

    Two docker engine calls (``docker ps`` filtered on the labels, then ``docker inspect``) instead of a
    ``docker compose ps``, which loads and resolves the whole compose project first; for polling.
    One-off containers (``docker compose run``) are left out, as ``docker compose ps`` does.
    """
    docker = module.get_bin_path('docker', required=True)
    rc, out, err = module.run_command([docker, 'ps', '--all', '--quiet', '--no-trunc',
                                       '--filter', 'label=com.docker.compose.project=%s' % project,
                                       '--filter', 'label=com.docker.compose.oneoff=False'])
    if rc != 0:
        module.fail_json(msg='docker ps failed (rc=%s) for compose project %s: %s' % (rc, project, err.strip()), rc=rc, stderr=err)
    inspected = docker_inspect(module, out.split())
    rows = []
    for info in inspected:
        labels = (info.get('Config') or {}).get('Labels') or {}
        state = info.get('State') or {}
        if services is not None and labels.get('com.docker.compose.service') not in services:
            continue
        health = (state.get('Health') or {}).get('Status') or ''
        rows.append(dict(ID=(info.get('Id') or '')[:12], Name=(info.get('Name') or '').lstrip('/'), Project=project,
                         Service=labels.get('com.docker.compose.service'), State=state.get('Status'), Health=health,
                         ExitCode=state.get('ExitCode'), Image=(info.get('Config') or {}).get('Image'),
                         Status='%s%s' % (state.get('Status'), ' (%s)' % health if health else '')))
    return rows, inspected


def container_ready(container):
    """Running, and healthy when the image defines a healthcheck."""
    return container.get('state') == 'running' and container.get('health') in ('healthy', '', None)


def service_status(name, containers, expected=None, restart_warning=3):
    """Summary and health check of one service from its described containers.

    ``expected`` is the number of containers that should serve; by default the number
    compose created (at least one), so a scaled service with one dead replica is degraded.
    """
    total = len(containers)
    running = sum(1 for item in containers if item.get('state') == 'running')
    ready = sum(1 for item in containers if container_ready(item))
    want = expected if expected is not None else max(1, total)
    restarts = sum(int(item.get('restart_count') or 0) for item in containers)
    summary = dict(containers=containers, total=total, running=running, healthy=ready, expected=want, restart_count=restarts,
                   states=sorted(set(item.get('state') or '' for item in containers)),
                   health=sorted(set(item.get('health') or 'none' for item in containers)))
    label = 'service %s' % name
    # One-shot jobs (migrations, seeders) legitimately end: exit 0 with no restart policy is success.
    completed = total > 0 and all(item.get('state') == 'exited' and item.get('exit_code') == 0 and item.get('restart_policy') == 'no'
                                  for item in containers)
    # A stopped container keeps its last health status; only a running one's health means anything.
    problems = ['%s %s%s' % (item.get('name'), item.get('state'),
                             (' ' + item.get('health')) if item.get('health') and item.get('state') == 'running' else '')
                for item in containers if not container_ready(item)]
    if completed:
        check = make_check(label, OK, '%s: one-shot job completed (exit 0)' % label, summary_details(summary))
    elif total == 0:
        check = make_check(label, CRITICAL, '%s: 0/%d containers running (no container created; run docker compose up)' % (label, want),
                           summary_details(summary))
    elif running == 0:
        check = make_check(label, CRITICAL, '%s: 0/%d containers running (%s)' % (label, want, ', '.join(problems)), summary_details(summary))
    elif ready == 0:
        check = make_check(label, CRITICAL, '%s: %d/%d containers running, 0 healthy (%s)' % (label, running, want, ', '.join(problems)),
                           summary_details(summary))
    elif ready < want:
        check = make_check(label, WARNING, '%s: degraded, %d/%d containers ready (%s)' % (label, ready, want, ', '.join(problems) or 'missing replicas'),
                           summary_details(summary))
    elif restart_warning and restarts >= restart_warning:
        check = make_check(label, WARNING, '%s: %d/%d ready but restarted %d times (warning at %d); check docker compose logs %s' % (
            label, ready, want, restarts, restart_warning, name), summary_details(summary))
    else:
        check = make_check(label, OK, '%s: %d/%d containers running%s' % (
            label, ready, want, ' and healthy' if any(item.get('health') for item in containers) else ''), summary_details(summary))
    summary['check'] = check
    return summary


def summary_details(summary):
    return dict((key, value) for key, value in summary.items() if key not in ('containers', 'check'))


# --- Waiting, logs and snapshots shared by the lifecycle modules --------------------------------

def project_label(params):
    return params.get('project_name') or params.get('project_dir') or 'the compose project'


def services_snapshot(module, params, services, replicas=None, restart_warning=3, extra_args=None, fast=False, images=True):
    """service -> service_status() for the given services, from one ps and one inspect call.

    With ``fast`` and a known project name the containers are found by their compose labels
    (labelled_containers(): docker ps and inspect, no compose call); ``images=False`` skips the image digests.
    """
    if fast and params.get('project_name'):
        rows, inspected = labelled_containers(module, params['project_name'], services)
        containers = describe_containers(module, rows, inspected=inspected, images=images)
    else:
        containers = describe_containers(module, compose_ps(module, params), images=images)
    by_service = {}
    for container in containers:
        by_service.setdefault(container['service'], []).append(container)
    result = {}
    for name in services:
        members = sorted(by_service.get(name, []), key=lambda item: item.get('number') or 0)
        want = replicas.get(name) if isinstance(replicas, dict) else replicas
        result[name] = service_status(name, members, expected=want, restart_warning=restart_warning)
    return result


def add_image_digests(module, snapshot):
    """Fill in image_digests of a snapshot taken with images=False (one docker image inspect); returns it."""
    containers = [item for summary in snapshot.values() for item in summary['containers']]
    image_ids = sorted(set(item['image_id'] for item in containers if item.get('image_id')))
    images = dict((item.get('Id'), item) for item in docker_inspect(module, image_ids, kind='image'))
    for item in containers:
        item['image_digests'] = (images.get(item.get('image_id')) or {}).get('RepoDigests') or []
    return snapshot


def crashed(summary):
    """Containers that died or crash-loop: waiting longer will not make them healthy."""
    return [item['name'] for item in summary['containers']
            if item.get('state') in ('exited', 'dead', 'restarting') or (item.get('state') == 'running' and item.get('health') == 'unhealthy')]


def wait_services(module, params, services, replicas=None, wait_for='healthy', timeout=120, interval=1.0, fail_fast=True,
                  baseline_restarts=None):
    """Poll until each service has its expected containers running/healthy.

    Returns (snapshot, not_ready, elapsed, reason). With ``fail_fast`` a service whose containers
    exited, crash-loop or turned unhealthy stops the wait at once: its healthcheck already gave up.
    """
    start = time.monotonic()
    deadline = start + max(0.0, timeout)
    while True:
        # Looks are cheap docker engine calls when the project name is known; the image digests are read
        # once, for the snapshot that is returned.
        snap = services_snapshot(module, params, services, replicas=replicas, restart_warning=0, fast=True, images=False)
        not_ready = [name for name in services
                     if (snap[name]['running'] if wait_for == 'running' else snap[name]['healthy']) < snap[name]['expected']]
        if not not_ready:
            return add_image_digests(module, snap), [], round(time.monotonic() - start, 3), ''
        if fail_fast:
            problems = []
            for name in not_ready:
                restarts = snap[name]['restart_count'] - (baseline_restarts or {}).get(name, snap[name]['restart_count'])
                if restarts > 0:
                    problems.append('crash-looping (%s restarted %d times)' % (name, restarts))
                elif crashed(snap[name]):
                    problems.append('failed (%s)' % ', '.join(
                        '%s %s' % (item['name'], item['state'] if item['state'] != 'running' else 'unhealthy')
                        for item in snap[name]['containers'] if item['name'] in crashed(snap[name])))
            if problems:
                return add_image_digests(module, snap), not_ready, round(time.monotonic() - start, 3), '; '.join(problems)
        if time.monotonic() >= deadline:
            return add_image_digests(module, snap), not_ready, round(time.monotonic() - start, 3), 'not %s after %ss' % (wait_for, timeout)
        time.sleep(max(0.0, min(interval, deadline - time.monotonic())))


def service_logs(module, params, service, tail=30, since=None, timestamps=False):
    """Last log lines of a service (all its containers), for failure messages and diagnostics."""
    args = ['logs', '--no-color', '--tail', str(tail)] + (['--since', since] if since else []) + (['--timestamps'] if timestamps else [])
    rc, out, err = run_compose(module, params, args + [service], check_rc=False)
    text = (out or '') + (err or '')
    return text.strip() if rc == 0 else 'logs unavailable (rc=%s): %s' % (rc, err.strip())


def failure_report(module, params, snapshot, services, tail=30):
    """State and last logs of the given services, for a failure message operators can act on."""
    parts = []
    for name in services:
        state = snapshot.get(name, {}).get('check', {}).get('message', 'service %s: unknown state' % name)
        logs = service_logs(module, params, name, tail) if tail else ''
        parts.append('%s\n--- last %d log lines of %s ---\n%s' % (state, tail, name, logs) if tail else state)
    return '\n'.join(parts)


def config_hashes(module, params, environ_update=None):
    """service -> the config hash compose would give its containers now; a differing label means up recreates it."""
    _rc, out, _err = run_compose(module, params, ['config', '--hash', '*'], environ_update=environ_update or {})
    hashes = {}
    for line in out.splitlines():
        parts = line.split()
        if len(parts) == 2:
            hashes[parts[0]] = parts[1]
    return hashes


def container_fingerprint(snapshot):
    """What identifies the running state of services: container ids and states."""
    return sorted((item.get('id'), item.get('state')) for summary in snapshot.values() for item in summary['containers'])
