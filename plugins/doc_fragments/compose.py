# -*- coding: utf-8 -*-
# Copyright: (c) 2026, stackops maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function
__metaclass__ = type


class ModuleDocFragment(object):
    """Options that locate a Docker Compose project; they mirror ``compose_argument_spec()``
    in module_utils/compose.py exactly.

    A module whose argument_spec is ``compose_argument_spec()`` (plus its own options) uses
    ``extends_documentation_fragment: [stackops.runbooks.compose]``.
    """

    DOCUMENTATION = r'''
options:
  project_dir:
    description: Compose project directory, passed as C(--project-directory).
    type: path
  project_name:
    description:
      - Compose project name, passed as C(-p).
      - When unset, compose's usual default applies - E(COMPOSE_PROJECT_NAME), the compose file's C(name),
        or the name of the project directory.
    type: str
  env_files:
    description: Files passed as C(--env-file), in order.
    type: list
    elements: path
    default: []
  compose_files:
    description: Compose files passed as C(-f), in order; when empty, compose uses the project's own default file.
    type: list
    elements: path
    default: []
  profiles:
    description: Compose profiles passed as C(--profile), so services of those profiles are part of the project.
    type: list
    elements: str
    default: []
'''
