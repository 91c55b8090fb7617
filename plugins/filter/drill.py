# -*- coding: utf-8 -*-
# Copyright: (c) 2026, stackops maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Filters of the drill role: a view of module_utils/drill.py (its checks, as stack_drill_record reads them)."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

from ansible_collections.stackops.runbooks.plugins.module_utils.drill import failed_check_messages


class FilterModule(object):
    def filters(self):
        return {'drill_failed_checks': failed_check_messages}
