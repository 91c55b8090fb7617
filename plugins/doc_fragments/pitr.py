# -*- coding: utf-8 -*-
# Copyright: (c) 2026, stackops maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function
__metaclass__ = type


class ModuleDocFragment(object):
    """Options that locate a Barman catalog; they mirror ``pitr_argument_spec()`` in module_utils/pitr.py.

    Every PITR module takes them, so the same module_defaults fit all of them.
    """

    DOCUMENTATION = r'''
options:
  pitr_dir:
    description: Directory of Barman's configuration and catalog, as set up by M(stackops.runbooks.pg_pitr).
    type: path
    required: true
  server_name:
    description: Barman server name.
    type: str
    required: true
  barman_bin:
    description:
      - Path of the C(barman) program (default looked up on E(PATH) and next to the module's Python).
      - Modules that run no Barman command accept it so the same options fit every PITR module.
    type: path
  pg_bindir:
    description: Directory of the host's PostgreSQL programs (C(pg_basebackup), C(pg_verifybackup), C(pg_controldata)).
    type: path
    default: /usr/lib/postgresql/15/bin
'''

    # Options of the modules that start a recovered cluster in a scratch container and query it;
    # they mirror scratch_check_argument_spec() in module_utils/pitr.py.
    SCRATCH_CHECK = r'''
options:
  compose_service:
    description:
      - Compose service that runs PostgreSQL; its image starts the scratch check.
      - The inventory variable C(stackops_db_service) (docs/inventory.md).
    type: str
    required: true
  check_user:
    description: Role the scratch check connects as (local trust inside the scratch container).
    type: str
    default: postgres
  check_db:
    description: Database the scratch check queries.
    type: str
    default: postgres
'''
