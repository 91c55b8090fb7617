# -*- coding: utf-8 -*-
# Copyright: (c) 2026, stackops maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Filters of the startup role: a view of module_utils/startup.py (the tier records and the run's report)."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

from ansible_collections.stackops.runbooks.plugins.module_utils.startup import startup_report, tier_record


def startup_tier(up, gates, services, index, postgres=False, urls=None):
    return tier_record(up, gates, services, index, postgres=postgres, urls=urls)


class FilterModule(object):
    def filters(self):
        return {'startup_tier': startup_tier, 'startup_report': startup_report}
