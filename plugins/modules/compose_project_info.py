#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, stackops maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function
__metaclass__ = type

DOCUMENTATION = r'''
---
module: compose_project_info
short_description: Describe a compose project for a stackops inventory - its database, writers, ports and health URLs
version_added: 0.2.0
description:
  - Reads the resolved model of a Docker Compose project (C(docker compose config --format json)) and finds its
    PostgreSQL service - a postgres, postgis or timescale image, a C(pg_isready) healthcheck, or C(POSTGRES_*)
    variables.
  - Takes the user, database, port and password source from the official postgres image's environment contract
    (E(POSTGRES_USER), E(POSTGRES_DB), E(POSTGRES_PASSWORD) or E(POSTGRES_PASSWORD_FILE) with a compose secret
    or bind mount) and the published port.
  - Connects to the server once and lists its databases with their encodings.
  - Finds the writer services (they C(depends_on) the database, or their environment names its host), the
    services bound to fixed host ports (they cannot run a second replica), and HTTP health URLs from HTTP
    healthchecks and published ports, each probed once.
  - Read-only. This is what C(stackops init) runs (playbooks/init.yml) to write an inventory.
author:
  - stackops maintainers (@stackops)
options:
  db_service:
    description: The PostgreSQL service, when detection should not choose it.
    type: str
  probe:
    description: Probe each candidate health URL once and record in RV(health_urls) whether it answered (C(ok)).
    type: bool
    default: true
  probe_timeout:
    description: Seconds to wait for each probe.
    type: float
    default: 5
  connect_timeout:
    description: Seconds to wait for the database connection.
    type: int
    default: 10
  return_password:
    description:
      - Return the password in RV(password) when it is only in the compose environment (E(POSTGRES_PASSWORD)),
        so a following task can store it in a private file.
      - The task must then use C(no_log) - the value is the database password.
    type: bool
    default: false
extends_documentation_fragment:
  - stackops.runbooks.compose
  - stackops.runbooks.attributes
  - stackops.runbooks.attributes.info_module
  - stackops.runbooks.attributes.actiongroup_compose
notes:
  - Supports check mode; it is read-only, so check mode behaves like a normal run.
  - Needs psycopg on the managed host to list the databases; without it RV(databases) is empty and
    RV(problems) says why.
seealso:
  - module: stackops.runbooks.compose_service_info
'''

EXAMPLES = r'''
- name: Describe the shop's compose project
  stackops.runbooks.compose_project_info:
    project_dir: /srv/shop
    compose_files: [/srv/shop/docker-compose.prod.yml, /srv/shop/docker-compose.local.yml]
    env_files: [/srv/shop/shop.env]
  register: shop

- name: Show the database service it found
  ansible.builtin.debug:
    msg: "{{ shop.db.service }} on port {{ shop.db.port }}, databases {{ shop.databases | map(attribute='name') | list }}"
'''

RETURN = r'''
project:
  description: The compose project - name, directory, services and the project options it was read with.
  returned: always
  type: dict
  sample: {name: shop, project_dir: /srv/shop, services: [backend, cache, db, worker]}
db:
  description:
    - The PostgreSQL service to operate (service, image, reasons, user, database, host, port, container_port,
      password), or null when none was found.
    - Its C(password) key says where the password comes from (C(kind) V(file) with C(host_path), V(environment),
      V(trust) or V(unknown)); the value itself is never part of it.
  returned: always
  type: dict
db_candidates:
  description: Every service that looks like a PostgreSQL server, in the same shape as RV(db).
  returned: always
  type: list
  elements: dict
databases:
  description: The server's databases (name, encoding, size_bytes), templates left out.
  returned: always
  type: list
  elements: dict
  sample: [{name: shop, encoding: UTF8, size_bytes: 7689699}, {name: legacy, encoding: SQL_ASCII, size_bytes: 7532003}]
writers:
  description: Services that write to the database, with the reasons they were chosen.
  returned: always
  type: dict
  sample: {backend: [depends_on db], worker: [environment PGHOST names db]}
fixed_ports:
  description: Services bound to fixed host ports (or a container_name), which can never run two containers.
  returned: always
  type: dict
  sample: {backend: ['fixed host port 127.0.0.1:56210'], db: ['fixed host port 127.0.0.1:56201']}
rollable:
  description: Services that can run several replicas (no fixed host port, not the database).
  returned: always
  type: list
  elements: str
health_urls:
  description: Candidate health URLs (service, name, url, source) with the probe's outcome (ok, status, error).
  returned: always
  type: list
  elements: dict
incident_service:
  description: The service the api_not_responding runbook should restart (a writer with an HTTP endpoint), or null.
  returned: always
  type: str
incident_url:
  description: That service's health URL, or null.
  returned: always
  type: str
problems:
  description: What prevents a working inventory, each with what to do; empty when none.
  returned: always
  type: list
  elements: str
password:
  description: The password from the compose environment.
  returned: when O(return_password=true) and the password is only in the environment
  type: str
'''

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.stackops.runbooks.plugins.module_utils.compose import compose_argument_spec, compose_config
from ansible_collections.stackops.runbooks.plugins.module_utils.compose_detect import detect
from ansible_collections.stackops.runbooks.plugins.module_utils.health_http import http_health_spec, probe
from ansible_collections.stackops.runbooks.plugins.module_utils import pg


def read_password(module, db, config):
    """The password in memory, masked in everything the module returns or logs."""
    source = db['password']
    password = None
    if source['kind'] == 'file':
        try:
            with open(source['host_path']) as handle:
                password = handle.read().strip()
        except (IOError, OSError) as exc:
            return None, 'cannot read the password file %s (%s): %s' % (source['host_path'], source['via'], exc)
    elif source['kind'] == 'environment':
        env = ((config.get('services') or {}).get(db['service']) or {}).get('environment') or {}
        password = env.get('POSTGRES_PASSWORD')
    if password:
        module.no_log_values.add(password)
    return password, None


def list_databases(module, db, password):
    """[{name, encoding, size_bytes}] of the server, or (None, problem)."""
    if not pg.HAS_PSYCOPG:
        return [], 'psycopg is missing on the managed host, so the databases were not listed; install python3-psycopg'
    params = dict(login_host=db['host'], login_port=db['port'], login_user=db['user'], login_password=password,
                  login_db=db['database'], connect_timeout=module.params['connect_timeout'])
    try:
        with pg.connect(params, application_name='stackops-init') as conn:
            rows = conn.execute(
                "SELECT datname, pg_encoding_to_char(encoding), pg_database_size(oid) FROM pg_database "
                "WHERE NOT datistemplate AND datallowconn ORDER BY datname").fetchall()
    except pg.psycopg.Error as exc:
        return [], 'cannot connect to %s (service %s): %s; start the project (docker compose up -d) and check the ' \
                   'password source' % (pg.describe_target(params), db['service'], str(exc).strip())
    return [dict(name=name, encoding=encoding, size_bytes=size) for name, encoding, size in rows], None


def probe_urls(module, candidates):
    defaults = dict((key, value.get('default')) for key, value in http_health_spec().items())
    for item in candidates:
        params = dict(defaults, url=item['url'], status_code=list(range(200, 400)), validate_certs=False)
        outcome = probe(params, module.params['probe_timeout'])
        item.update(ok=not outcome['error'], status=outcome['status'], error=outcome['error'] or None)
    return candidates


def main():
    spec = compose_argument_spec()
    spec.update(
        db_service=dict(type='str'),
        probe=dict(type='bool', default=True),
        probe_timeout=dict(type='float', default=5),
        connect_timeout=dict(type='int', default=10),
        return_password=dict(type='bool', default=False, no_log=False),
    )
    module = AnsibleModule(argument_spec=spec, supports_check_mode=True)
    params = module.params
    config = compose_config(module, params)
    found = detect(config, project_dir=params['project_dir'], db_service=params['db_service'])
    problems = list(found['problems'])
    databases = []
    password = None
    db = found['db']
    if db and db['port'] is not None and db['password']['kind'] != 'unknown':
        password, problem = read_password(module, db, config)
        if problem:
            problems.append(problem)
        else:
            databases, problem = list_databases(module, db, password)
            if problem:
                problems.append(problem)
    urls = probe_urls(module, found['health_candidates']) if params['probe'] else found['health_candidates']
    result = dict(
        changed=False,
        project=dict(name=found['project'], project_dir=params['project_dir'], services=found['services'],
                     compose_files=params['compose_files'], env_files=params['env_files'], profiles=params['profiles']),
        db=db, db_candidates=found['databases'], databases=databases, writers=found['writers'],
        fixed_ports=found['fixed_ports'], rollable=found['rollable'], health_urls=urls,
        incident_service=found['incident_service'], incident_url=found['incident_url'], problems=problems)
    if params['return_password'] and db and db['password']['kind'] == 'environment' and password:
        # Asked for on purpose: the only way the caller can keep an environment-only password in a file.
        module.no_log_values.discard(password)
        result['password'] = password
    module.exit_json(**result)


if __name__ == '__main__':
    main()
