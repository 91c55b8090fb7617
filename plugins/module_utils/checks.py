# -*- coding: utf-8 -*-
# Copyright: (c) 2026, stackops maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Severities, thresholds and reports shared by every health-type module.

Every check, whatever produced it, has the same shape::

    {"name": "disk /", "severity": "WARNING", "message": "disk /: 83.1% used (warning at 80%)", "details": {...}}

so the health role can concatenate the checks of several modules and aggregate them
once, and operators read the same structure in the fact, the JSON file and AWX.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import json
import re

OK = 'OK'
WARNING = 'WARNING'
CRITICAL = 'CRITICAL'
SEVERITIES = (OK, WARNING, CRITICAL)
_RANK = {OK: 0, WARNING: 1, CRITICAL: 2}

# stackops_health_fail_on / fail_on values -> lowest severity that fails the run.
FAIL_ON_CHOICES = ('critical', 'warning', 'never')

_MISSING = object()


def rank(severity):
    """Numeric order of a severity; unknown strings count as CRITICAL so typos never hide a problem."""
    return _RANK.get(str(severity).upper(), _RANK[CRITICAL])


def worst(severities):
    """The most severe of an iterable of severities (OK for an empty one)."""
    result = OK
    for severity in severities:
        if rank(severity) > rank(result):
            result = str(severity).upper() if str(severity).upper() in _RANK else CRITICAL
    return result


def make_check(name, severity, message, details=None):
    if severity not in _RANK:
        raise ValueError('unknown severity %r; use one of %s' % (severity, ', '.join(SEVERITIES)))
    return {'name': name, 'severity': severity, 'message': message, 'details': details or {}}


def evaluate_threshold(value, warning=None, critical=None, higher_is_worse=True):
    """Severity of ``value`` against optional warning/critical limits.

    Reaching a limit counts (>= for higher-is-worse, <= otherwise), so a limit of 0
    forces the level: operators and tests use that to prove the alerting path works.
    """
    if value is None:
        return OK

    def reached(limit):
        if limit is None:
            return False
        return value >= limit if higher_is_worse else value <= limit

    if reached(critical):
        return CRITICAL
    if reached(warning):
        return WARNING
    return OK


def validate_thresholds(warning, critical, label, higher_is_worse=True):
    """Error text when the pair is inverted (a warning that can never fire), else None."""
    if warning is None or critical is None:
        return None
    if higher_is_worse and warning > critical:
        return '%s: warning threshold %s is above critical threshold %s; warning must be <= critical' % (label, _fmt(warning), _fmt(critical))
    if not higher_is_worse and warning < critical:
        return '%s: warning threshold %s is below critical threshold %s; for this lower-is-worse value warning must be >= critical' % (
            label, _fmt(warning), _fmt(critical))
    return None


def threshold_check(name, value, warning, critical, unit='%', higher_is_worse=True, what='used', details=None):
    """A check for one measured value, with a message that says the value and the limit it crossed."""
    severity = evaluate_threshold(value, warning, critical, higher_is_worse)
    shown = _fmt(value) + unit
    if severity == CRITICAL:
        message = '%s: %s %s (critical at %s%s)' % (name, shown, what, _fmt(critical), unit)
    elif severity == WARNING:
        message = '%s: %s %s (warning at %s%s)' % (name, shown, what, _fmt(warning), unit)
    else:
        message = '%s: %s %s' % (name, shown, what)
    merged = {'value': value, 'warning': warning, 'critical': critical, 'unit': unit}
    merged.update(details or {})
    return make_check(name, severity, message, merged)


def _fmt(number):
    if isinstance(number, float):
        return ('%.1f' % number).rstrip('0').rstrip('.') if number != int(number) else str(int(number))
    return str(number)


# --- JSON field expectations -------------------------------------------------------------

def lookup_path(data, path):
    """Value at a dotted path (``db.connected``, ``items.0.name``); ``(found, value)``.

    A key that itself contains dots is matched before splitting, so ``{"a.b": 1}``
    is reachable as ``a.b`` too.
    """
    if isinstance(data, dict) and path in data:
        return True, data[path]
    current = data
    for part in path.split('.'):
        if isinstance(current, dict):
            if part not in current:
                return False, None
            current = current[part]
        elif isinstance(current, list):
            try:
                current = current[int(part)]
            except (ValueError, IndexError):
                return False, None
        else:
            return False, None
    return True, current


def values_match(expected, actual):
    """Equality that tolerates YAML/JSON spelling: ``"true"`` matches ``true``, ``"5"`` matches ``5``."""
    if expected == actual and type(expected) is type(actual):
        return True
    if isinstance(expected, bool) or isinstance(actual, bool):
        # True == 1 in Python; a health flag must not be satisfied by a counter.
        return _canonical(expected) == _canonical(actual)
    if isinstance(expected, (int, float)) and isinstance(actual, (int, float)):
        return expected == actual
    return _canonical(expected) == _canonical(actual)


def _canonical(value):
    if isinstance(value, str):
        return value.strip().lower() if value.strip().lower() in ('true', 'false', 'null') else value
    return json.dumps(value, sort_keys=True)


def json_mismatches(data, expectations):
    """Human-readable list of unmet ``{dotted.path: expected}`` expectations (empty when all hold)."""
    problems = []
    for path, expected in (expectations or {}).items():
        found, actual = lookup_path(data, path)
        if not found:
            problems.append('JSON field %s missing (expected %s)' % (path, json.dumps(expected)))
        elif not values_match(expected, actual):
            problems.append('JSON field %s is %s, expected %s' % (path, json.dumps(actual), json.dumps(expected)))
    return problems


def body_regex_mismatch(body, pattern):
    if not pattern:
        return None
    if re.search(pattern, body or '', re.MULTILINE):
        return None
    return 'body does not match regex %r' % pattern


# --- Reports -----------------------------------------------------------------------------

def fail_level(fail_on):
    """Lowest severity that fails for a fail_on setting; None for 'never'."""
    fail_on = (fail_on or 'critical').lower()
    if fail_on not in FAIL_ON_CHOICES:
        raise ValueError('fail_on must be one of %s, got %r' % (', '.join(FAIL_ON_CHOICES), fail_on))
    return {'critical': CRITICAL, 'warning': WARNING, 'never': None}[fail_on]


def failing_checks(checks, fail_on='critical'):
    level = fail_level(fail_on)
    if level is None:
        return []
    return [check for check in checks if rank(check.get('severity')) >= rank(level)]


def aggregate(checks, fail_on='critical', extra=None):
    """One report from any number of checks: overall severity, counts, and what fails the run."""
    checks = [normalise_check(check) for check in checks]
    counts = dict((severity.lower(), 0) for severity in SEVERITIES)
    for check in checks:
        counts[check['severity'].lower()] += 1
    failing = failing_checks(checks, fail_on)
    report = {
        'severity': worst(check['severity'] for check in checks),
        'counts': counts,
        'checks': checks,
        'critical': [check['message'] for check in checks if check['severity'] == CRITICAL],
        'warnings': [check['message'] for check in checks if check['severity'] == WARNING],
        'fail_on': (fail_on or 'critical').lower(),
        'failed': bool(failing),
        'fail_message': failure_message(failing),
    }
    report.update(extra or {})
    return report


def normalise_check(check):
    """Coerce a check from any source into the standard shape; malformed ones become CRITICAL."""
    if not isinstance(check, dict):
        return make_check('invalid check', CRITICAL, 'a health check returned %r instead of a dict' % (check,))
    severity = str(check.get('severity', '')).upper()
    name = str(check.get('name') or 'unnamed check')
    if severity not in _RANK:
        return make_check(name, CRITICAL, '%s: unknown severity %r' % (name, check.get('severity')), check.get('details'))
    return make_check(name, severity, str(check.get('message') or name), check.get('details'))


def failure_message(failing):
    if not failing:
        return ''
    return 'health: %d check(s) failing: %s' % (len(failing), '; '.join(check['message'] for check in failing))


def summary_lines(report):
    """Plain lines for the play output: worst first, one per check."""
    ordered = sorted(report['checks'], key=lambda check: -rank(check['severity']))
    lines = ['overall %s (%d ok, %d warning, %d critical)' % (
        report['severity'], report['counts']['ok'], report['counts']['warning'], report['counts']['critical'])]
    lines.extend('%-8s %s' % (check['severity'], check['message']) for check in ordered)
    return lines
