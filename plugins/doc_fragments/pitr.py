# -*- coding: utf-8 -*-
# Copyright: (c) 2026, stackops maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function
__metaclass__ = type

from ansible_collections.stackops.runbooks.plugins.doc_fragments.compose import ModuleDocFragment as _Compose

# The options of pitr_argument_spec() in module_utils/pitr.py: every PITR module takes them, so the same
# module_defaults fit all of them.
_CATALOG = r'''
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

_SCRATCH = r'''
  compose_service:
    description: Compose service that runs PostgreSQL. The image of its container (for a service built by compose,
      the image compose built) starts the scratch check; its data mount is where a recovery goes.
    type: str
    required: true
  check_user:
    description: Role the scratch check connects as (local trust inside the scratch container); the inventory's
      database user, which need not be C(postgres).
    type: str
    required: true
  check_db:
    description: Database the scratch check queries.
    type: str
    required: true
'''


class ModuleDocFragment(object):
    """Options that locate a Barman catalog (``pitr_argument_spec()`` in module_utils/pitr.py)."""

    DOCUMENTATION = 'options:' + _CATALOG

    # The whole option set of the modules that start a recovered cluster in a scratch container and query it
    # (pg_pitr_backup, pg_pitr_restore): the catalog's, the scratch check's and the compose project's. It mirrors
    # scratch_check_argument_spec() in module_utils/pitr.py, which is built from the same three parts.
    SCRATCH_CHECK = 'options:' + _CATALOG + _SCRATCH + _Compose.DOCUMENTATION.split('options:', 1)[1].lstrip('\n')
