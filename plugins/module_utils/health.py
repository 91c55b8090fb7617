# -*- coding: utf-8 -*-
# Copyright: (c) 2026, stackops maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Running check groups side by side in one module, and the report they end in.

stack_health runs the compose, http, postgres and host checks in one module invocation, each group in
its own thread (they wait on docker, sockets and the database, not on the CPU). Inside a group the
shared helpers still call ``module.fail_json`` for errors they cannot recover from; ``GroupModule``
turns that into a ``GroupError`` for that group only, which becomes one CRITICAL check naming the group,
while the other groups report normally.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import datetime
import json
import os
import threading
import time

from ansible.module_utils.common.arg_spec import ArgumentSpecValidator
from ansible.module_utils.common.text.converters import to_native

from ansible_collections.stackops.runbooks.plugins.module_utils.checks import CRITICAL, aggregate, make_check, summary_lines
from ansible_collections.stackops.runbooks.plugins.module_utils.compose import (
    compose_config, dependency_tiers, depends_on_map, project_label)


class GroupError(Exception):
    """A check group could not run; the message says why."""


class GroupModule(object):
    """The AnsibleModule as one check group sees it: its own params, and fail_json raises GroupError.

    ``run_command`` and ``get_bin_path`` are AnsibleModule's own methods bound to this object, so their
    internal ``self.fail_json`` calls (command not found, ...) stay inside the group too. Everything else
    (no_log_values, check_mode, ...) is the real module's.
    """

    def __init__(self, module, params):
        self._module = module
        self.params = params

    def run_command(self, *args, **kwargs):
        return type(self._module).run_command(self, *args, **kwargs)

    def get_bin_path(self, *args, **kwargs):
        return type(self._module).get_bin_path(self, *args, **kwargs)

    def __getattr__(self, name):
        return getattr(self._module, name)

    def fail_json(self, msg='', **kwargs):
        raise GroupError(msg or 'failed without a message')

    def exit_json(self, **kwargs):
        raise GroupError('a check helper ended the module early')


def validate_options(spec, options, label):
    """``options`` checked and completed with the defaults of ``spec``, as AnsibleModule would; GroupError on errors."""
    result = ArgumentSpecValidator(spec).validate(dict(options or {}))
    if result.error_messages:
        raise GroupError('invalid %s options: %s' % (label, '; '.join(to_native(msg) for msg in result.error_messages)))
    return result.validated_parameters


def run_groups(groups, stop_on_critical=False):
    """Run ``[(label, callable returning checks)]`` concurrently; returns one outcome per group, in order.

    A group that raises becomes one CRITICAL check named after it, whose message is the error. With
    ``stop_on_critical`` the first group to report a CRITICAL check ends the run: a gate that already failed
    must not wait for the others' timeouts; groups still running are reported CRITICAL as not finished.
    """
    outcomes = [dict(name=label, checks=[], error=None, elapsed=None) for label, _func in groups]
    finished = threading.Condition()
    started = time.monotonic()

    def work(outcome, func):
        try:
            checks = list(func())
            error = None
        except Exception as exc:  # pylint: disable=broad-except
            error = ' '.join(to_native(exc).split()) or type(exc).__name__
            checks = [make_check(outcome['name'], CRITICAL, '%s: check could not run: %s' % (outcome['name'], error), dict(error=error))]
        with finished:
            outcome.update(checks=checks, error=error, elapsed=round(time.monotonic() - started, 3))
            finished.notify_all()

    for outcome, (_label, func) in zip(outcomes, groups):
        thread = threading.Thread(target=work, args=(outcome, func), name='check-%s' % outcome['name'])
        thread.daemon = True
        thread.start()

    def first_critical():
        return next((outcome['name'] for outcome in outcomes if outcome['elapsed'] is not None
                     and any(check['severity'] == CRITICAL for check in outcome['checks'])), None)

    with finished:
        while any(outcome['elapsed'] is None for outcome in outcomes):
            if stop_on_critical and first_critical():
                break
            finished.wait()
        failed = first_critical()
        for outcome in outcomes:
            if outcome['elapsed'] is None:
                outcome.update(elapsed=round(time.monotonic() - started, 3), error='not finished',
                               checks=[make_check(outcome['name'], CRITICAL, '%s: not finished, stopped because %s failed first' % (
                                   outcome['name'], failed), dict(error='not finished'))])
    return outcomes


def select_services(module, params, services):
    """(wanted services in dependency order, start tiers) of a compose project; fails on unknown services or cycles."""
    config = compose_config(module, params)
    defined = list((config.get('services') or {}).keys())
    try:
        tiers = dependency_tiers(depends_on_map(config))
    except ValueError as exc:
        module.fail_json(msg='compose project %s: %s; fix depends_on in the compose file' % (project_label(params), exc))
    unknown = [name for name in services if name not in defined]
    if unknown:
        module.fail_json(msg='service(s) %s not defined in compose project %s (defined: %s); check the services option' % (
            ', '.join(unknown), params.get('project_name') or params.get('project_dir'), ', '.join(defined)))
    # Dependency order reads naturally in reports: database first, frontend last.
    return list(services) or [name for tier in tiers for name in tier], tiers


def build_report(checks, fail_on='critical', metadata=None):
    """checks.aggregate() plus the metadata keys and generated_at (UTC, seconds)."""
    extra = dict(metadata or {})
    extra['generated_at'] = datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0).isoformat()
    return aggregate(checks, fail_on=fail_on, extra=extra)


def report_result(module, checks, params):
    """What health_report and stack_health return: report and summary from the checks and params' fail_on and
    metadata; with params' path also the file (changed and path keys)."""
    report = build_report(checks, fail_on=params['fail_on'], metadata=params['metadata'])
    result = dict(changed=False, report=report, summary=summary_lines(report))
    if params['path']:
        result['changed'] = write_report(module, params['path'], report)
        result['path'] = params['path']
    return result


def write_report(module, path, report):
    """Write atomically so a reader never sees half a report; returns whether the file changed (not written in check mode)."""
    content = json.dumps(report, indent=2, sort_keys=True, default=str) + '\n'
    try:
        with open(path) as handle:
            if handle.read() == content:
                return False
    except (IOError, OSError):
        pass
    if module.check_mode:
        return True
    directory = os.path.dirname(os.path.abspath(path))
    try:
        if not os.path.isdir(directory):
            os.makedirs(directory, 0o750)
        tmp = '%s.tmp.%d' % (path, os.getpid())
        with open(tmp, 'w') as handle:
            handle.write(content)
        os.chmod(tmp, 0o640)
        os.rename(tmp, path)
    except (IOError, OSError) as exc:
        module.fail_json(msg='cannot write the health report to %s: %s; fix stackops_health_report_path or its permissions' % (
            path, to_native(exc)))
    return True
