#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, stackops maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function
__metaclass__ = type

DOCUMENTATION = r'''
---
module: host_docker_info
short_description: Check that the Docker engine answers and that docker compose is v2
version_added: 0.3.0
description:
  - Asks the Docker engine for its server version (C(docker version)) and the compose plugin for its own
    (C(docker compose version)), the two things every stackops procedure needs on a managed node.
  - Fails with what is missing and what to install or start when the engine does not answer or compose is not
    v2 or later (the old C(docker-compose) 1.x is not enough). With O(fail_when_not_ready=false) it reports instead.
  - Read-only; never changes anything.
author:
  - stackops maintainers (@stackops)
options:
  fail_when_not_ready:
    description: Fail the task when the node is not ready; with V(false) only RV(ready) and RV(problems) say so.
    type: bool
    default: true
extends_documentation_fragment:
  - stackops.runbooks.attributes
  - stackops.runbooks.attributes.info_module
seealso:
  - module: stackops.runbooks.compose_preflight_info
'''

EXAMPLES = r'''
- name: Require Docker and compose v2
  stackops.runbooks.host_docker_info:
  register: docker

- name: Show the versions
  ansible.builtin.debug:
    msg: "docker {{ docker.docker_version }}, compose {{ docker.compose_version }}"
'''

RETURN = r'''
ready:
  description: The engine answers and compose is v2 or later.
  returned: always
  type: bool
docker_version:
  description: Server version of the Docker engine; null when it does not answer.
  returned: always
  type: str
  sample: 26.1.5
compose_version:
  description: Version of docker compose; null when it is not installed.
  returned: always
  type: str
  sample: 2.29.7
problems:
  description: What is missing, each with what to do; empty when ready.
  returned: always
  type: list
  elements: str
'''

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.stackops.runbooks.plugins.module_utils.compose import compose_v2, docker_engine


def main():
    module = AnsibleModule(argument_spec=dict(fail_when_not_ready=dict(type='bool', default=True)),
                           supports_check_mode=True)
    docker_version, engine_problem = docker_engine(module)
    compose_version, compose_problem = compose_v2(module)
    problems = ['docker engine: %s' % engine_problem] if engine_problem else []
    if compose_problem:
        problems.append('docker compose v2: %s' % compose_problem)
    result = dict(changed=False, ready=not problems, docker_version=docker_version, compose_version=compose_version,
                  problems=problems)
    if problems and module.params['fail_when_not_ready']:
        module.fail_json(msg='not ready for stackops: %s' % '; '.join(problems), **result)
    module.exit_json(**result)


if __name__ == '__main__':
    main()
