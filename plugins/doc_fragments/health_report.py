# -*- coding: utf-8 -*-
# Copyright: (c) 2026, stackops maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function
__metaclass__ = type


class ModuleDocFragment(object):
    """Report options of the modules that aggregate health checks (stack_health_report, stack_health);
    they mirror what ``module_utils/health.py``'s ``report_result()`` reads."""

    DOCUMENTATION = r'''
options:
  fail_on:
    description: Lowest severity that marks the report as failed; V(never) reports only.
    type: str
    choices: [critical, warning, never]
    default: critical
  path:
    description:
      - Also write the report as JSON to this file on the managed host (mode 0640, written atomically);
        parent directories are created.
      - Not written in check mode.
    type: path
  metadata:
    description: Extra keys merged into the report, for example the host and stack names.
    type: dict
    default: {}
'''
