# -*- coding: utf-8 -*-
# Copyright: (c) 2026, stackops maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function
__metaclass__ = type


# What each action group of meta/runtime.yml sets once in module_defaults (playbooks/vars/route.yml fills them).
GROUP_OPTIONS = {
    'catalog': 'the backup directory (backup_dir)',
    'compose': 'the compose project options',
    'db_service': 'the compose service that runs PostgreSQL (compose_service)',
    'pitr': "Barman's configuration (pitr_dir, server_name, pg_bindir)",
    'postgresql': 'the connection options',
    'scratch_check': 'the role and database of the scratch check (check_user, check_db)',
}


def action_groups(*groups):
    """The action_group attribute of a module in these groups (ansible-doc merges no lists across fragments, so each
    combination of groups a module has is one fragment below)."""
    uses = ', '.join('C(group/stackops.runbooks.%s) for %s' % (group, GROUP_OPTIONS[group]) for group in groups)
    return ("options: {}\nattributes:\n  action_group:\n    description: Use %s in C(module_defaults) to set them once.\n"
            "    support: full\n    membership:\n%s" % (uses, ''.join('      - stackops.runbooks.%s\n' % g for g in groups)))


class ModuleDocFragment(object):
    """The attributes every stackops module documents: check mode, diff mode and its action group.

    A module extends C(stackops.runbooks.attributes) (the descriptions), then exactly one of
    C(.info_module) (changes nothing) or C(.changes_state) (says what it would change in check
    mode), then the action group fragment matching its entries in meta/runtime.yml (the groups, sorted and joined by _), if
    any.
    tests/unit/test_module_attributes.py holds the modules to that.
    """

    DOCUMENTATION = r'''
options: {}
attributes:
  check_mode:
    description: Can run in check mode (C(--check)) and then reports what would change without changing it.
  diff_mode:
    description: Returns a C(diff) of what changed (or would change in check mode) when run with C(--diff).
'''

    INFO_MODULE = r'''
options: {}
attributes:
  check_mode:
    support: full
    details:
      - This module changes nothing, so check mode runs it as usual.
  diff_mode:
    support: N/A
    details:
      - This module changes nothing.
'''

    CHANGES_STATE = r'''
options: {}
attributes:
  check_mode:
    support: full
    details:
      - In check mode the module runs its read-only checks and returns the result it would return, with
        C(changed) predicted, but changes nothing.
  diff_mode:
    support: none
'''

    ACTIONGROUP_CATALOG = action_groups('catalog')
    ACTIONGROUP_CATALOG_COMPOSE = action_groups('catalog', 'compose')
    ACTIONGROUP_CATALOG_COMPOSE_DB_SERVICE_POSTGRESQL = action_groups('catalog', 'compose', 'db_service', 'postgresql')
    ACTIONGROUP_CATALOG_COMPOSE_PITR_POSTGRESQL = action_groups('catalog', 'compose', 'pitr', 'postgresql')
    ACTIONGROUP_COMPOSE = action_groups('compose')
    ACTIONGROUP_COMPOSE_DB_SERVICE_PITR_POSTGRESQL = action_groups('compose', 'db_service', 'pitr', 'postgresql')
    ACTIONGROUP_COMPOSE_DB_SERVICE_PITR_SCRATCH_CHECK = action_groups('compose', 'db_service', 'pitr', 'scratch_check')
    ACTIONGROUP_COMPOSE_POSTGRESQL = action_groups('compose', 'postgresql')
    ACTIONGROUP_PITR = action_groups('pitr')
    ACTIONGROUP_PITR_POSTGRESQL = action_groups('pitr', 'postgresql')
    ACTIONGROUP_POSTGRESQL = action_groups('postgresql')
