# -*- coding: utf-8 -*-
# Copyright: (c) 2026, stackops maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""What a resolved compose model says about a stack, for ``stackops init`` (compose_project_info).

Pure functions over the dict ``docker compose config --format json`` prints: no I/O, so every rule is
unit tested (tests/unit/test_init_detect.py). The module adds what needs the outside world: connecting to
the database to list its databases, and probing the health URLs once.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import re

from ansible_collections.stackops.runbooks.plugins.module_utils.compose import service_host

# Images whose entrypoint follows the official postgres image's environment contract.
PG_IMAGE = re.compile(r'(^|[/_-])(postgres|postgresql|postgis|timescaledb|timescaledb-ha|pgvector|pg)(:|@|$|[/_-])', re.I)
PG_PORT = 5432
HTTP_URL = re.compile(r'https?://[^\s\'"`;|&)]+')
# Environment keys whose value may name the database host.
HOST_KEY = re.compile(r'(HOST|URL|URI|DSN|ADDR|SERVER|DATABASE|CONN)', re.I)
CONTRACT_VARIABLES = ('POSTGRES_PASSWORD', 'POSTGRES_PASSWORD_FILE', 'POSTGRES_USER', 'POSTGRES_DB',
                      'POSTGRES_INITDB_ARGS', 'POSTGRES_HOST_AUTH_METHOD')
LOCAL_HOSTS = ('localhost', '127.0.0.1', '0.0.0.0', '[::1]', '::1', '')


def _services(config):
    return (config or {}).get('services') or {}


def _environment(spec):
    """The service environment as a dict of strings (compose prints a mapping; a null value stays None)."""
    env = (spec or {}).get('environment') or {}
    if isinstance(env, list):  # not what config --format json prints, but cheap to accept
        env = dict(item.split('=', 1) if '=' in item else (item, None) for item in env)
    return dict((str(key), None if value is None else str(value)) for key, value in env.items())


def _healthcheck_text(spec):
    test = ((spec or {}).get('healthcheck') or {}).get('test') or []
    if isinstance(test, str):
        return test
    return ' '.join(str(part) for part in test[1:] if part is not None) if test and test[0] in ('CMD', 'CMD-SHELL') else ''


def db_reasons(name, spec):
    """Why a service looks like a PostgreSQL server (empty when it does not)."""
    reasons = []
    image = str((spec or {}).get('image') or '')
    if image and PG_IMAGE.search(image.rsplit('/', 1)[-1]):
        reasons.append('image %s' % image)
    if re.search(r'\bpg_isready\b', _healthcheck_text(spec)):
        reasons.append('pg_isready healthcheck')
    env = _environment(spec)
    contract = sorted(key for key in env if key in CONTRACT_VARIABLES)
    if contract:
        reasons.append('environment %s' % ', '.join(contract))
    return reasons


def published_ports(spec):
    """[{target, published, host_ip, protocol}] of the ports published on a fixed host port."""
    ports = []
    for port in (spec or {}).get('ports') or []:
        if not isinstance(port, dict):
            continue
        published = str(port.get('published') or '')
        if not published:
            continue
        ports.append(dict(target=int(port.get('target') or 0), published=published,
                          host_ip=port.get('host_ip') or '', protocol=port.get('protocol') or 'tcp'))
    return ports


def host_address(host_ip):
    """Where a client on the host reaches a published port: the bound address, loopback for a wildcard."""
    return '127.0.0.1' if host_ip in ('', '0.0.0.0', '::', None) else host_ip


def _single_port(published):
    low, _sep, high = str(published).partition('-')
    try:
        return int(low) if not high or low == high else None
    except ValueError:
        return None


def password_source(spec, config, project_dir=None):
    """How the server's password is given, after the official image: POSTGRES_PASSWORD or POSTGRES_PASSWORD_FILE.

    Returns dict(kind=..., ...): V(file) with the host path of the file (a compose secret or a bind mount),
    V(environment) for a value in the environment (the caller reads it from the model; it is never returned
    here), V(trust) for POSTGRES_HOST_AUTH_METHOD=trust, or V(unknown) with a reason.
    """
    env = _environment(spec)
    if env.get('POSTGRES_PASSWORD_FILE'):
        path = env['POSTGRES_PASSWORD_FILE']
        top = (config or {}).get('secrets') or {}
        for secret in (spec or {}).get('secrets') or []:
            source = secret.get('source') if isinstance(secret, dict) else str(secret)
            target = (secret.get('target') if isinstance(secret, dict) else None) or '/run/secrets/%s' % source
            if not target.startswith('/'):
                target = '/run/secrets/%s' % target
            if target == path:
                definition = top.get(source) or {}
                if definition.get('file'):
                    return dict(kind='file', variable='POSTGRES_PASSWORD_FILE', container_path=path,
                                host_path=definition['file'], via='compose secret %s' % source)
                return dict(kind='unknown', variable='POSTGRES_PASSWORD_FILE', container_path=path,
                            reason='compose secret %s has no file (environment or external secrets cannot be read '
                                   'from the host)' % source)
        for volume in (spec or {}).get('volumes') or []:
            if not isinstance(volume, dict) or volume.get('type') != 'bind':
                continue
            target = volume.get('target') or ''
            if path == target or path.startswith(target.rstrip('/') + '/'):
                return dict(kind='file', variable='POSTGRES_PASSWORD_FILE', container_path=path,
                            host_path=volume['source'] + path[len(target):], via='bind mount %s' % target)
        return dict(kind='unknown', variable='POSTGRES_PASSWORD_FILE', container_path=path,
                    reason='%s is neither a compose secret nor in a bind mount, so it cannot be read from the host' % path)
    if env.get('POSTGRES_PASSWORD'):
        return dict(kind='environment', variable='POSTGRES_PASSWORD')
    if (env.get('POSTGRES_HOST_AUTH_METHOD') or '') == 'trust':
        return dict(kind='trust', variable='POSTGRES_HOST_AUTH_METHOD')
    return dict(kind='unknown', reason='neither POSTGRES_PASSWORD nor POSTGRES_PASSWORD_FILE is set')


def db_facts(name, spec, config, project_dir=None):
    """User, database, port and password source of one PostgreSQL service, after the official image's contract.

    ``host``/``port`` are where a client on the docker host connects: the published port, or for a service that
    publishes none (``published`` false) the service's container on its compose network, named by
    compose.service_host() and looked up at connect time, on the port inside the container."""
    env = _environment(spec)
    user = env.get('POSTGRES_USER') or 'postgres'
    container_port = int(env.get('PGPORT') or PG_PORT)
    facts = dict(service=name, image=(spec or {}).get('image') or '', reasons=db_reasons(name, spec),
                 user=user, database=env.get('POSTGRES_DB') or user,
                 password=password_source(spec, config, project_dir), container_port=container_port,
                 host=service_host((config or {}).get('name') or '', name), port=container_port, published=False)
    for port in published_ports(spec):
        if port['target'] == container_port and port['protocol'] == 'tcp' and _single_port(port['published']):
            facts.update(host=host_address(port['host_ip']), port=_single_port(port['published']), published=True)
            break
    return facts


def find_databases(config, project_dir=None):
    """Every service that looks like PostgreSQL, those reachable from the host first."""
    found = [db_facts(name, spec, config, project_dir) for name, spec in sorted(_services(config).items())
             if db_reasons(name, spec)]
    return sorted(found, key=lambda item: (not item['published'], item['service']))


def _names_host(value, host):
    return re.search(r'(?<![\w.-])%s(?![\w-])' % re.escape(host), value) is not None


def writer_reasons(name, spec, db_service, db_spec=None):
    """Why a service writes to the database: it depends_on it, or its environment names its host."""
    if name == db_service:
        return []
    reasons = []
    depends = (spec or {}).get('depends_on') or {}
    if db_service in depends:
        reasons.append('depends_on %s' % db_service)
    hosts = set([db_service])
    hosts.update((db_spec or {}).get('hostname') and [db_spec['hostname']] or [])
    hosts.update((db_spec or {}).get('container_name') and [db_spec['container_name']] or [])
    for network in ((db_spec or {}).get('networks') or {}).values():
        hosts.update((network or {}).get('aliases') or [])
    for key, value in sorted(_environment(spec).items()):
        if value and (HOST_KEY.search(key) or '://' in value) and any(_names_host(value, host) for host in hosts):
            reasons.append('environment %s names %s' % (key, db_service))
            break
    return reasons


def health_urls(config, exclude=()):
    """HTTP endpoints a client on the host can reach: from HTTP healthchecks on a published port, else the port's root.

    Returns [{service, name, url, source}], each URL to be probed once before it goes into an inventory.
    """
    urls = []
    for name, spec in sorted(_services(config).items()):
        if name in exclude:
            continue
        ports = [port for port in published_ports(spec) if port['protocol'] == 'tcp' and _single_port(port['published'])]
        if not ports:
            continue
        by_target = dict((port['target'], port) for port in ports)
        found = False
        for match in HTTP_URL.findall(_healthcheck_text(spec)):
            scheme, _sep, rest = match.partition('://')
            hostport, _slash, path = rest.partition('/')
            host, _colon, port_text = hostport.rpartition(':') if ':' in hostport.strip('[]') else (hostport, '', '')
            if host not in LOCAL_HOSTS:
                continue  # a healthcheck that calls another service says nothing about this one's port
            target = int(port_text) if port_text.isdigit() else (443 if scheme == 'https' else 80)
            port = by_target.get(target)
            if port:
                urls.append(dict(service=name, name=name, source='healthcheck', url='%s://%s:%s/%s' % (
                    scheme, host_address(port['host_ip']), _single_port(port['published']), path)))
                found = True
                break
        if not found:
            port = ports[0]
            urls.append(dict(service=name, name=name, source='published port %s' % port['published'],
                             url='http://%s:%s/' % (host_address(port['host_ip']), _single_port(port['published']))))
    return urls


def fixed_port_services(config):
    """service -> reasons it cannot run more than one container (fixed host ports, container_name)."""
    result = {}
    for name, spec in sorted(_services(config).items()):
        reasons = ['fixed host port %s%s' % (('%s:' % port['host_ip']) if port['host_ip'] else '', port['published'])
                   for port in published_ports(spec)]
        if (spec or {}).get('container_name'):
            reasons.append('container_name %s' % spec['container_name'])
        if reasons:
            result[name] = reasons
    return result


def detect(config, project_dir=None, db_service=None):
    """Everything ``stackops init`` takes from a compose model.

    Returns dict(project, services, databases (every PostgreSQL service), db (the one to operate), writers
    {service: reasons}, fixed_ports {service: reasons}, rollable, health_candidates, incident_service, problems).
    """
    services = _services(config)
    databases = find_databases(config, project_dir)
    problems = []
    db = None
    if db_service:
        if db_service not in services:
            problems.append('service %s (db_service) is not in the compose project; it has %s' % (
                db_service, ', '.join(sorted(services)) or 'no services'))
        else:
            db = [item for item in databases if item['service'] == db_service] or [db_facts(db_service, services[db_service], config)]
            db = db[0]
    elif databases:
        db = databases[0]
    else:
        problems.append('no PostgreSQL service found: none has a postgres/postgis/timescale image, a pg_isready '
                        'healthcheck or POSTGRES_* variables; name it with --db-service')
    if db and db['password']['kind'] == 'unknown':
        problems.append('the password of %s is not readable from the host: %s' % (db['service'], db['password']['reason']))
    db_name = db['service'] if db else None
    writers = {}
    for name, spec in sorted(services.items()):
        if db_name:
            reasons = writer_reasons(name, spec, db_name, services.get(db_name))
            if reasons:
                writers[name] = reasons
    fixed = fixed_port_services(config)
    database_services = set(item['service'] for item in databases) | set([db_name] if db_name else [])
    rollable = sorted(name for name in services if name not in fixed and name not in database_services)
    candidates = health_urls(config, exclude=database_services)
    # The service the api_not_responding runbook restarts: a writer with an HTTP endpoint, else any endpoint.
    incident = [item for item in candidates if item['service'] in writers] or candidates
    return dict(project=(config or {}).get('name'), services=sorted(services), databases=databases, db=db,
                writers=writers, fixed_ports=fixed, rollable=rollable, health_candidates=candidates,
                incident_service=incident[0]['service'] if incident else None,
                incident_url=incident[0]['url'] if incident else None, problems=problems)
