# -*- coding: utf-8 -*-
# Copyright: (c) 2026, stackops maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Filters of the maintenance role: a view of module_utils/maintenance.py (the window's report in words)."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

from ansible_collections.stackops.runbooks.plugins.module_utils.maintenance import (
    prune_record, rollback_failure, window_summary)


class FilterModule(object):
    def filters(self):
        return {'maintenance_summary': window_summary, 'maintenance_failure': rollback_failure,
                'maintenance_prune_record': prune_record}
