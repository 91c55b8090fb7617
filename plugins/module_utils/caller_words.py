# -*- coding: utf-8 -*-
# Copyright: (c) 2026, stackops maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Refusals in the words of whoever called the module.

A module that refuses until an option is set (``replace``, ``confirm``, ``require_verified``) says which setting
would let it go ahead. Called from a role, that is the role's inventory variable, not the module option: the role
passes ``option_variables`` ({option: variable}) and the refusal names ``stackops_restore_confirm=true``. The
stackops CLI turns such variables into its flags (``--yes``) in one place (src/stackops/wording.py).
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type


def option_variables_spec():
    """The option every module that refuses until an option is set takes (doc fragment stackops.runbooks.caller)."""
    return dict(option_variables=dict(type='dict', default={}))


def render_value(value):
    if value is True:
        return 'true'
    if value is False:
        return 'false'
    return str(value)


def setting(params, option, value):
    """How the caller sets ``option`` to ``value``: ``variable=value`` with the role's variable, else ``option=value``."""
    name = (params.get('option_variables') or {}).get(option) or option
    return '%s=%s' % (name, render_value(value))


def settings(params, *pairs):
    """Several settings the caller needs together, joined with 'and' (pairs of option and value)."""
    return ' and '.join(setting(params, option, value) for option, value in pairs)


def failed_task_message(failed_result):
    """A failed task's message in the caller's words. A failed loop says only "One or more items failed": add the
    failed items' own messages, which name what to fix."""
    failed_result = failed_result or {}
    message = '%s' % failed_result.get('msg', 'failed without a message')
    if 'results' in failed_result:
        message += ': ' + '; '.join('%s' % item.get('msg', '?') for item in failed_result['results'] or []
                                    if isinstance(item, dict) and item.get('failed'))
    return message
