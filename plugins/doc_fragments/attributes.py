# -*- coding: utf-8 -*-
# Copyright: (c) 2026, stackops maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function
__metaclass__ = type


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

    ACTIONGROUP_CATALOG = r'''
options: {}
attributes:
  action_group:
    description: Use C(group/stackops.runbooks.catalog) for the backup directory (backup_dir) in C(module_defaults) to set them
      once.
    support: full
    membership:
      - stackops.runbooks.catalog
'''

    ACTIONGROUP_CATALOG_PITR = r'''
options: {}
attributes:
  action_group:
    description: Use C(group/stackops.runbooks.catalog) for the backup directory (backup_dir) and
      C(group/stackops.runbooks.pitr) for Barman's configuration (pitr_dir, server_name, pg_bindir) in
      C(module_defaults) to set them once.
    support: full
    membership:
      - stackops.runbooks.catalog
      - stackops.runbooks.pitr
'''

    ACTIONGROUP_CATALOG_COMPOSE = r'''
options: {}
attributes:
  action_group:
    description: Use C(group/stackops.runbooks.catalog) for the backup directory (backup_dir),
      C(group/stackops.runbooks.compose) for the compose project options in C(module_defaults) to set them once.
    support: full
    membership:
      - stackops.runbooks.catalog
      - stackops.runbooks.compose
'''

    ACTIONGROUP_CATALOG_COMPOSE_DB_SERVICE_POSTGRESQL = r'''
options: {}
attributes:
  action_group:
    description: Use C(group/stackops.runbooks.catalog) for the backup directory (backup_dir),
      C(group/stackops.runbooks.compose) for the compose project options, C(group/stackops.runbooks.db_service) for
      the compose service that runs PostgreSQL (compose_service), C(group/stackops.runbooks.postgresql) for the
      connection options in C(module_defaults) to set them once.
    support: full
    membership:
      - stackops.runbooks.catalog
      - stackops.runbooks.compose
      - stackops.runbooks.db_service
      - stackops.runbooks.postgresql
'''

    ACTIONGROUP_CATALOG_COMPOSE_PITR_POSTGRESQL = r'''
options: {}
attributes:
  action_group:
    description: Use C(group/stackops.runbooks.catalog) for the backup directory (backup_dir),
      C(group/stackops.runbooks.compose) for the compose project options, C(group/stackops.runbooks.pitr) for
      Barman's configuration (pitr_dir, server_name, pg_bindir), C(group/stackops.runbooks.postgresql) for the
      connection options in C(module_defaults) to set them once.
    support: full
    membership:
      - stackops.runbooks.catalog
      - stackops.runbooks.compose
      - stackops.runbooks.pitr
      - stackops.runbooks.postgresql
'''

    ACTIONGROUP_COMPOSE = r'''
options: {}
attributes:
  action_group:
    description: Use C(group/stackops.runbooks.compose) for the compose project options in C(module_defaults) to set them once.
    support: full
    membership:
      - stackops.runbooks.compose
'''

    ACTIONGROUP_COMPOSE_DB_SERVICE_PITR_POSTGRESQL = r'''
options: {}
attributes:
  action_group:
    description: Use C(group/stackops.runbooks.compose) for the compose project options, C(group/stackops.runbooks.db_service)
      for the compose service that runs PostgreSQL (compose_service), C(group/stackops.runbooks.pitr) for Barman's
      configuration (pitr_dir, server_name, pg_bindir), C(group/stackops.runbooks.postgresql) for the connection
      options in C(module_defaults) to set them once.
    support: full
    membership:
      - stackops.runbooks.compose
      - stackops.runbooks.db_service
      - stackops.runbooks.pitr
      - stackops.runbooks.postgresql
'''

    ACTIONGROUP_COMPOSE_DB_SERVICE_PITR_SCRATCH_CHECK = r'''
options: {}
attributes:
  action_group:
    description: Use C(group/stackops.runbooks.compose) for the compose project options, C(group/stackops.runbooks.db_service)
      for the compose service that runs PostgreSQL (compose_service), C(group/stackops.runbooks.pitr) for Barman's
      configuration (pitr_dir, server_name, pg_bindir), C(group/stackops.runbooks.scratch_check) for the role and
      database of the scratch check (check_user, check_db) in C(module_defaults) to set them once.
    support: full
    membership:
      - stackops.runbooks.compose
      - stackops.runbooks.db_service
      - stackops.runbooks.pitr
      - stackops.runbooks.scratch_check
'''

    ACTIONGROUP_COMPOSE_POSTGRESQL = r'''
options: {}
attributes:
  action_group:
    description: Use C(group/stackops.runbooks.compose) for the compose project options, C(group/stackops.runbooks.postgresql)
      for the connection options in C(module_defaults) to set them once.
    support: full
    membership:
      - stackops.runbooks.compose
      - stackops.runbooks.postgresql
'''

    ACTIONGROUP_PITR = r'''
options: {}
attributes:
  action_group:
    description: Use C(group/stackops.runbooks.pitr) for Barman's configuration (pitr_dir, server_name, pg_bindir) in
      C(module_defaults) to set them once.
    support: full
    membership:
      - stackops.runbooks.pitr
'''

    ACTIONGROUP_PITR_POSTGRESQL = r'''
options: {}
attributes:
  action_group:
    description: Use C(group/stackops.runbooks.pitr) for Barman's configuration (pitr_dir, server_name, pg_bindir),
      C(group/stackops.runbooks.postgresql) for the connection options in C(module_defaults) to set them once.
    support: full
    membership:
      - stackops.runbooks.pitr
      - stackops.runbooks.postgresql
'''

    ACTIONGROUP_POSTGRESQL = r'''
options: {}
attributes:
  action_group:
    description: Use C(group/stackops.runbooks.postgresql) for the connection options in C(module_defaults) to set them once.
    support: full
    membership:
      - stackops.runbooks.postgresql
'''
