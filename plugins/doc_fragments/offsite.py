# -*- coding: utf-8 -*-
# Copyright: (c) 2026, stackops maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function
__metaclass__ = type


class ModuleDocFragment(object):
    """Options of the off-site set modules that module_utils/offsite_plan.py decides on, whatever the target.

    DOCUMENTATION mirrors offsite_plan.copy_spec() (the copy modules), FETCH offsite_plan.fetch_spec().
    """

    DOCUMENTATION = r'''
options:
  backup_id:
    description: Copy this set (it must be verified). Without it, O(sets) decides.
    type: str
  sets:
    description: Without O(backup_id), copy the newest verified set (V(latest)) or every verified set not yet on the target (V(all)).
    type: str
    choices: [latest, all]
    default: latest
  retention:
    description: Retention policy of the copies on this target; omit to keep every copy.
    type: dict
    suboptions:
      keep_last:
        description: Newest copies to keep.
        type: int
        default: 7
      keep_daily:
        description: Days with a copy to keep (the newest of each day).
        type: int
        default: 7
      keep_weekly:
        description: ISO weeks with a copy to keep.
        type: int
        default: 4
      keep_monthly:
        description: Months with a copy to keep.
        type: int
        default: 3
'''

    FETCH = r'''
options:
  database:
    description: Database whose newest verified copy is fetched when O(backup_id) is not given.
    type: str
  backup_id:
    description: Copy to fetch.
    type: str
  dest:
    description: Directory to place the set in (created if missing); use a work directory, not the backup dir of a live host.
    type: path
    required: true
  require_verified:
    description: Refuse copies of sets that were not verified before they were copied.
    type: bool
    default: true
'''
