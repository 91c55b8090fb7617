#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, stackops maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function
__metaclass__ = type

DOCUMENTATION = r'''
---
module: compose_preflight_info
short_description: Check that a compose stack can start - engine, compose file, env and secret files, ports, images
version_added: 0.1.0
description:
  - Returns one health check per item, with severity OK, WARNING or CRITICAL, in the shape the
    M(stackops.runbooks.stack_health_report) module aggregates.
  - C(docker engine) - the engine answers C(docker version).
  - C(compose file) - C(docker compose config -q) accepts the project with its env files.
  - C(file <path>) - every env file, service C(env_file) and file-based secret exists, is readable and not empty.
    File contents are never read into the result.
  - C(port <ip>:<port>) - every published fixed host port is free, or already published by this project.
  - C(image <name>) - every service image is present locally, or the service has a build context that exists.
  - Read-only.
author:
  - stackops maintainers (@stackops)
options:
  required_files:
    description: Further files that must exist and be non-empty, for example a DB password file.
    type: list
    elements: path
    default: []
  check_ports:
    description: Check published host ports.
    type: bool
    default: true
  check_images:
    description: Check service images.
    type: bool
    default: true
extends_documentation_fragment:
  - stackops.runbooks.compose
  - stackops.runbooks.attributes
  - stackops.runbooks.attributes.info_module
  - stackops.runbooks.attributes.actiongroup_compose
notes:
  - Supports check mode; it is read-only, so check mode behaves like a normal run.
seealso:
  - module: stackops.runbooks.host_resources_info
'''

EXAMPLES = r'''
- name: Can the stack start here?
  stackops.runbooks.compose_preflight_info:
    project_dir: /srv/app
    env_files: [/srv/app/.env.production]
    required_files: [/srv/app/secrets/db_password]
  register: preflight
'''

RETURN = r'''
checks:
  description: Health checks (name, severity, message, details).
  returned: always
  type: list
  elements: dict
services:
  description: Services the compose file defines.
  returned: when the compose file is valid
  type: list
  elements: str
'''

import errno
import json
import os
import socket

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.stackops.runbooks.plugins.module_utils.checks import CRITICAL, OK, WARNING, make_check
from ansible_collections.stackops.runbooks.plugins.module_utils.compose import (
    compose_argument_spec, compose_command, compose_ps, docker_engine, project_label)


def file_check(path, purpose):
    label = 'file %s' % path
    if not os.path.exists(path):
        return make_check(label, CRITICAL, '%s: missing (%s); create it before starting the stack' % (label, purpose), dict(purpose=purpose))
    if not os.access(path, os.R_OK):
        return make_check(label, CRITICAL, '%s: not readable (%s); fix its permissions' % (label, purpose), dict(purpose=purpose))
    if os.path.isfile(path) and os.path.getsize(path) == 0:
        return make_check(label, CRITICAL, '%s: empty (%s)' % (label, purpose), dict(purpose=purpose))
    return make_check(label, OK, '%s: present (%s)' % (label, purpose), dict(purpose=purpose))


def port_in_use(host_ip, port):
    family = socket.AF_INET6 if ':' in host_ip else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.bind((host_ip, port))
        return False
    except (OSError, socket.error) as exc:
        return exc.errno == errno.EADDRINUSE
    finally:
        sock.close()


def main():
    spec = compose_argument_spec()
    spec.update(
        required_files=dict(type='list', elements='path', default=[]),
        check_ports=dict(type='bool', default=True),
        check_images=dict(type='bool', default=True),
    )
    module = AnsibleModule(argument_spec=spec, supports_check_mode=True)
    params = module.params
    checks = []
    result = dict(changed=False, checks=checks)
    version, problem = docker_engine(module)
    if problem:
        checks.append(make_check('docker engine', CRITICAL, 'docker engine on %s: %s' % (socket.gethostname(), problem)))
        module.exit_json(**result)
    checks.append(make_check('docker engine', OK, 'docker engine: version %s answers' % version, dict(version=version)))
    docker = module.get_bin_path('docker', required=True)

    for path in params['env_files']:
        checks.append(file_check(path, 'compose --env-file'))
    for path in params['required_files']:
        checks.append(file_check(path, 'required file'))

    rc, out, err = module.run_command(compose_command(module, params, ['config', '-q']))
    if rc != 0:
        checks.append(make_check('compose file', CRITICAL, 'compose file: docker compose config rejects project %s: %s' % (
            project_label(params), ' '.join(err.split()) or out.strip())))
        module.exit_json(**result)
    rc, out, err = module.run_command(compose_command(module, params, ['config', '--format', 'json']))
    config = json.loads(out)
    services = config.get('services') or {}
    result['services'] = list(services)
    checks.append(make_check('compose file', OK, 'compose file: valid, %d services (%s)' % (len(services), ', '.join(services))))

    for name, secret in (config.get('secrets') or {}).items():
        if secret.get('file'):
            checks.append(file_check(secret['file'], 'secret %s' % name))
    for name, service in services.items():
        for entry in service.get('env_file') or []:
            path = entry.get('path') if isinstance(entry, dict) else entry
            if isinstance(entry, dict) and entry.get('required') is False and not os.path.exists(path):
                continue
            checks.append(file_check(path, 'env_file of service %s' % name))

    if params['check_ports']:
        ours = set()
        for row in compose_ps(module, params):
            for publisher in row.get('Publishers') or []:
                if publisher.get('PublishedPort'):
                    ours.add(int(publisher['PublishedPort']))
        for name, service in services.items():
            for port in service.get('ports') or []:
                if not isinstance(port, dict) or not port.get('published'):
                    continue
                host_ip = port.get('host_ip') or '0.0.0.0'
                number = int(str(port['published']).split('-', maxsplit=1)[0])
                label = 'port %s:%d' % (host_ip, number)
                if number in ours:
                    checks.append(make_check(label, OK, '%s: published by this project (service %s)' % (label, name)))
                elif port_in_use(host_ip, number):
                    checks.append(make_check(label, CRITICAL, '%s: in use by another process; service %s cannot publish it - '
                                                              'stop that process or change the port' % (label, name)))
                else:
                    checks.append(make_check(label, OK, '%s: free (service %s)' % (label, name)))

    if params['check_images']:
        for name, service in services.items():
            image = service.get('image')
            label = 'image %s' % (image or name)
            present = False
            if image:
                rc, _out, _err = module.run_command([docker, 'image', 'inspect', '--format', '{{.Id}}', image])
                present = rc == 0
            build = service.get('build') or {}
            context = build.get('context') if isinstance(build, dict) else build
            if present:
                checks.append(make_check(label, OK, '%s: present' % label))
            elif context and os.path.isdir(context):
                checks.append(make_check(label, OK, '%s: not built yet, buildable from %s' % (label, context)))
            elif context:
                checks.append(make_check(label, CRITICAL, '%s: missing and its build context %s does not exist' % (label, context)))
            else:
                checks.append(make_check(label, WARNING, '%s: not present locally; compose will pull it (needs registry access)' % label))
    module.exit_json(**result)


if __name__ == '__main__':
    main()
