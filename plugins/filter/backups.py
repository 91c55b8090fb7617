# -*- coding: utf-8 -*-
# Copyright: (c) 2026, stackops maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Filters of the backup role: a view of module_utils/backup_catalog.py (`stackops backups`)."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

from ansible_collections.stackops.runbooks.plugins.module_utils.backup_catalog import backups_listing


class FilterModule(object):
    def filters(self):
        return {'backups_listing': backups_listing}
