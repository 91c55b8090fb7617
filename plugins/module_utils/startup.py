# -*- coding: utf-8 -*-
# Copyright: (c) 2026, stackops maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The startup role's report: one record per tier from what compose_service and stack_health returned, and the
run's totals, so the role only orchestrates."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type


def tier_record(up, gates, services, index, postgres=False, urls=None):
    """The record of tier ``index`` (0-based): ``up`` is compose_service's result, ``gates`` stack_health's (or a
    skipped task's); the tier passed the PostgreSQL gate when ``postgres``, and a probe of each of ``urls``. Its
    seconds are the start plus the slowest gate, which ran side by side."""
    gate_names = (['postgres'] if postgres else []) + [url['name'] for url in urls or []]
    elapsed = [group.get('elapsed') or 0 for group in (gates or {}).get('groups') or []]
    seconds = round(float(up.get('elapsed') or 0) + float(max(elapsed or [0])), 3)
    changed = list(up.get('changed_services') or [])
    return dict(
        tier=index + 1, services=list(services), seconds=seconds, changed_services=changed, gates=list(gate_names),
        summary='tier %d (%s): %ss%s' % (index + 1, ', '.join(services), seconds,
                                         ', started ' + ', '.join(changed) if changed else ', already healthy'))


def startup_report(records, tiers=None, ok=True):
    """The run's totals over its tier records; with ``ok`` false, also the tier it stopped at (the first one without
    a record), and the per-tier lines with the totals for the role's output."""
    records = list(records or [])
    tiers = list(tiers or [])
    changed = [service for record in records for service in record['changed_services']]
    total = round(sum(record['seconds'] for record in records), 3)
    failed_tier = None if ok or len(records) >= len(tiers) else tiers[len(records)]
    return dict(
        tiers=records, total_seconds=total, changed_services=changed, failed_tier=failed_tier,
        lines=[record['summary'] for record in records] + [
            'total %ss, changed: %s' % (total, ', '.join(changed) if changed else 'nothing')])
