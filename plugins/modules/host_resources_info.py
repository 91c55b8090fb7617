#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, stackops maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function
__metaclass__ = type

DOCUMENTATION = r'''
---
module: host_resources_info
short_description: Check disk, inode, memory, load and Docker disk usage against thresholds
version_added: 0.1.0
description:
  - Measures disk and inode usage of the filesystems holding O(paths), memory in use
    (from C(MemAvailable) in C(/proc/meminfo)), the 1-minute load average as a percentage
    of the usable CPUs, and Docker's own disk usage (C(docker system df)).
  - Each measurement becomes a health check with severity OK, WARNING or CRITICAL.
    A value that reaches a threshold counts, so a threshold of V(0) forces that level.
  - Read-only; never changes anything. Linux only.
author:
  - stackops maintainers (@stackops)
extends_documentation_fragment:
  - stackops.runbooks.attributes
  - stackops.runbooks.attributes.info_module
options:
  paths:
    description:
      - Paths whose filesystems are checked; each filesystem is reported once.
      - Missing paths are reported as CRITICAL, since a missing data directory is worse than a full one.
    type: list
    elements: path
    default: [/]
  disk_warning:
    description: Disk (and inode) usage percentage that is a WARNING.
    type: float
    default: 80
  disk_critical:
    description: Disk (and inode) usage percentage that is CRITICAL.
    type: float
    default: 90
  memory_warning:
    description: Memory usage percentage (100 - MemAvailable/MemTotal) that is a WARNING.
    type: float
    default: 85
  memory_critical:
    description: Memory usage percentage that is CRITICAL.
    type: float
    default: 95
  load_warning:
    description: 1-minute load average as a percentage of usable CPUs that is a WARNING.
    type: float
    default: 80
  load_critical:
    description:
      - 1-minute load percentage that is CRITICAL. Unset by default, so load alone never fails a health run.
      - Load counts queued work, not failure; builds, backups and test runs push it past 200% of the CPUs
        while every service is healthy. Set it (e.g. V(400)) where sustained load really is an outage.
    type: float
  docker:
    description:
      - Also check Docker's data root filesystem and report C(docker system df) usage.
      - Silently skipped when the docker CLI is not installed.
    type: bool
    default: true
notes:
  - Supports check mode; it is read-only, so check mode behaves like a normal run.
'''

EXAMPLES = r'''
- name: Check the root and the backup filesystems with the default thresholds
  stackops.runbooks.host_resources_info:
    paths: [/, /var/backups]
  register: resources

- name: Stricter disk limits on a small volume
  stackops.runbooks.host_resources_info:
    paths: [/srv/pgdata]
    disk_warning: 70
    disk_critical: 85
    docker: false
'''

RETURN = r'''
disks:
  description: Per filesystem, its usage (path, mount, total_bytes, used_bytes, free_bytes, used_percent, inodes_used_percent).
  returned: always
  type: list
  elements: dict
memory:
  description: total_bytes, available_bytes, used_percent (from /proc/meminfo).
  returned: always
  type: dict
load:
  description: load1, load5, load15, cpus, percent (load1 / cpus * 100).
  returned: always
  type: dict
docker:
  description: C(docker system df) rows (type, total_count, active, size_bytes, reclaimable_bytes) and the data root.
  returned: when O(docker=true) and the docker CLI is present
  type: dict
checks:
  description: Health checks (name, severity, message, details).
  returned: always
  type: list
  elements: dict
'''

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.stackops.runbooks.plugins.module_utils.health_host import host_resources_spec, run_host_resources, threshold_problem


def main():
    module = AnsibleModule(argument_spec=host_resources_spec(), supports_check_mode=True)
    problem = threshold_problem(module.params)
    if problem:
        module.fail_json(msg=problem)
    module.exit_json(**run_host_resources(module, module.params))


if __name__ == '__main__':
    main()
