# -*- coding: utf-8 -*-
# Copyright: (c) 2026, stackops maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Filters every procedure role's report uses: a view of module_utils/caller_words.py."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

from ansible_collections.stackops.runbooks.plugins.module_utils.caller_words import failed_task_message


class FilterModule(object):
    def filters(self):
        return {'failed_task_message': failed_task_message}
