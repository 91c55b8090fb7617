#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, stackops maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function
__metaclass__ = type

DOCUMENTATION = r'''
---
module: host_log_cleanup
short_description: Remove old log files on the host and say what was reclaimed
version_added: 0.2.0
description:
  - Removes the regular files under O(paths) (at any depth) whose name matches one of O(patterns) and that were last
    modified O(max_age_days) days ago or earlier. Hidden files and symbolic links are never touched.
  - Returns every file with its size, the bytes reclaimed and a one-line summary, so a role does not assemble them.
  - A path that is not a directory is skipped with a warning.
author:
  - stackops maintainers (@stackops)
extends_documentation_fragment:
  - stackops.runbooks.attributes
  - stackops.runbooks.attributes.changes_state
options:
  paths:
    description: Directories to clean, searched recursively.
    type: list
    elements: path
    required: true
  patterns:
    description: Shell patterns matched against a file's name (not its path); empty matches every name.
    type: list
    elements: str
    default: []
  max_age_days:
    description: Files last modified this many days ago or earlier are removed.
    type: int
    required: true
notes:
  - Check mode lists the files that would be removed and removes none.
'''

EXAMPLES = r'''
- name: Remove application logs older than two weeks
  stackops.runbooks.host_log_cleanup:
    paths: [/var/log/app]
    patterns: ["*.log", "*.log.*"]
    max_age_days: 14
'''

RETURN = r'''
files:
  description: The files removed (in check mode, that would be), C(path) and C(size) in bytes, sorted by path.
  returned: always
  type: list
  elements: dict
  sample: [{path: /var/log/app/api.log.3, size: 1048576}]
removed:
  description: The paths of RV(files).
  returned: always
  type: list
  elements: str
reclaimed_bytes:
  description: The bytes of RV(files).
  returned: always
  type: int
reclaimed:
  description: RV(reclaimed_bytes) for people.
  returned: always
  type: str
  sample: 1.00 MB
missing:
  description: Entries of O(paths) that are not directories (skipped).
  returned: always
  type: list
  elements: str
summary:
  description: The run in one line.
  returned: always
  type: str
  sample: removed 3 log file(s) older than 14 day(s), 1.00 MB
'''

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.stackops.runbooks.plugins.module_utils.log_cleanup import clean_up


def main():
    module = AnsibleModule(argument_spec=dict(
        paths=dict(type='list', elements='path', required=True),
        patterns=dict(type='list', elements='str', default=[]),
        max_age_days=dict(type='int', required=True),
    ), supports_check_mode=True)
    params = module.params
    try:
        result = clean_up(params['paths'], params['patterns'], params['max_age_days'], check=module.check_mode)
    except OSError as exc:
        module.fail_json(msg='log cleanup in %s failed: %s' % (', '.join(params['paths']), exc))
    for path in result['missing']:
        module.warn('%s is not a directory; skipped' % path)
    module.exit_json(**result)


if __name__ == '__main__':
    main()
