# -*- coding: utf-8 -*-
# Copyright: (c) 2026, stackops maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Filters of the scaling role: the same variables drive Compose and Kubernetes."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

DOCUMENTATION = r'''
name: k8s_scale_params
short_description: Map the stackops_scaling_* variables to kubernetes.core.k8s_scale options
version_added: 0.1.0
author: stackops maintainers (@stackops)
description:
  - Takes a dict of the scaling role's variables (without the C(stackops_scaling_) prefix) and returns the options of
    M(kubernetes.core.k8s_scale) - kind, name, namespace, replicas, wait, wait_timeout and, when set, kubeconfig and context.
  - The workload name defaults to the compose service name, so one inventory can drive both backends.
options:
  _input:
    description: Dict with service, replicas and optional step, allow_zero, k8s_kind, k8s_name, k8s_namespace, k8s_kubeconfig, k8s_context, wait_timeout.
    type: dict
    required: true
'''

EXAMPLES = r'''
k8s: "{{ {'service': 'api', 'replicas': 3, 'k8s_namespace': 'shop'} | stackops.runbooks.k8s_scale_params }}"
'''

RETURN = r'''
_value:
  description: Options for kubernetes.core.k8s_scale.
  type: dict
'''

from ansible.errors import AnsibleFilterError

from ansible_collections.stackops.runbooks.plugins.module_utils.compose import check_scale_request, scale_plan as plan_counts

K8S_KINDS = ('Deployment', 'StatefulSet', 'ReplicaSet')


def k8s_scale_params(settings):
    settings = dict(settings or {})
    if not settings.get('service') and not settings.get('k8s_name'):
        raise AnsibleFilterError('k8s_scale_params: set stackops_scaling_service (or stackops_scaling_k8s_name) to the workload to scale')
    try:
        replicas = int(settings.get('replicas'))
        step = int(settings.get('step') or 1)
    except (TypeError, ValueError):
        raise AnsibleFilterError('k8s_scale_params: stackops_scaling_replicas and stackops_scaling_step must be an integer each, '
                                 'got %r and %r' % (settings.get('replicas'), settings.get('step')))
    # The same request rules as compose_scale, from the same function.
    problems = check_scale_request(settings.get('k8s_name') or settings.get('service'), replicas, step,
                                   str(settings.get('allow_zero', False)).lower() in ('1', 'true', 'yes', 'on'),
                                   allow_zero_setting='stackops_scaling_allow_zero=true')
    if problems:
        raise AnsibleFilterError('k8s_scale_params: ' + '; '.join(problems))
    kind = settings.get('k8s_kind') or 'Deployment'
    if kind not in K8S_KINDS:
        raise AnsibleFilterError('k8s_scale_params: stackops_scaling_k8s_kind must be one of %s, got %r' % (', '.join(K8S_KINDS), kind))
    params = dict(
        kind=kind,
        api_version='apps/v1',
        name=settings.get('k8s_name') or settings['service'],
        namespace=settings.get('k8s_namespace') or 'default',
        replicas=replicas,
        wait=True,
        wait_timeout=int(float(settings.get('wait_timeout') or 120)),
    )
    for key in ('kubeconfig', 'context'):
        if settings.get('k8s_' + key):
            params[key] = settings['k8s_' + key]
    return params


def scale_plan(current, target, step=1):
    """Replica counts from current to target (module_utils.compose.scale_plan, which compose_scale uses too)."""
    try:
        return plan_counts(current, target, step)
    except ValueError as exc:
        raise AnsibleFilterError('scale_plan: %s' % exc)


class FilterModule(object):
    def filters(self):
        return {'k8s_scale_params': k8s_scale_params, 'scale_plan': scale_plan}
