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

import json


def compose_argument_spec():
    """Argument spec fragment that locates a compose project."""
    return dict(
        project_dir=dict(type='path'),
        project_name=dict(type='str'),
        env_files=dict(type='list', elements='path', default=[]),
        compose_files=dict(type='list', elements='path', default=[]),
    )


def compose_command(module, params, args):
    """argv for ``docker compose <project options> <args>``."""
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
