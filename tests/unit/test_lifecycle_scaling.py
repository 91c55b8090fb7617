"""Variable mapping of the scaling role (Kubernetes backend) and the step plans of both backends."""
import pytest
from ansible.errors import AnsibleFilterError

from ansible_collections.stackops.runbooks.plugins.filter.scaling import FilterModule, k8s_scale_params, scale_plan
from ansible_collections.stackops.runbooks.plugins.module_utils.compose import check_scale_request, replica_limit
from ansible_collections.stackops.runbooks.plugins.module_utils.compose import scale_plan as plan


def test_k8s_mapping_defaults_to_the_service_name():
    assert k8s_scale_params({"service": "api", "replicas": "3"}) == {
        "kind": "Deployment", "api_version": "apps/v1", "name": "api", "namespace": "default", "replicas": 3,
        "wait": True, "wait_timeout": 120}


def test_k8s_mapping_passes_every_override():
    params = k8s_scale_params({"service": "api", "replicas": 0, "allow_zero": True, "k8s_kind": "StatefulSet", "k8s_name": "shop-api",
                               "k8s_namespace": "shop", "k8s_kubeconfig": "/etc/kube/config", "k8s_context": "prod",
                               "wait_timeout": 300.0})
    assert params == {"kind": "StatefulSet", "api_version": "apps/v1", "name": "shop-api", "namespace": "shop", "replicas": 0,
                      "wait": True, "wait_timeout": 300, "kubeconfig": "/etc/kube/config", "context": "prod"}


def test_k8s_mapping_omits_empty_connection_settings():
    params = k8s_scale_params({"service": "api", "replicas": 2, "k8s_kubeconfig": "", "k8s_context": "", "k8s_name": ""})
    assert "kubeconfig" not in params and "context" not in params and params["name"] == "api"


@pytest.mark.parametrize("settings, message", [
    ({"replicas": 1}, "stackops_scaling_service"),
    ({"service": "api", "replicas": "many"}, "must be an integer"),
    ({"service": "api", "replicas": 1, "k8s_kind": "Pod"}, "must be one of"),
])
def test_k8s_mapping_errors_name_the_variable(settings, message):
    with pytest.raises(AnsibleFilterError, match=message):
        k8s_scale_params(settings)


@pytest.mark.parametrize("current, target, step, expected", [
    (1, 3, 1, [2, 3]), (1, 6, 2, [3, 5, 6]), (3, 1, 1, [2, 1]), (5, 0, 2, [3, 1, 0]), (2, 2, 1, []), (0, 1, 5, [1])])
def test_plans_agree(current, target, step, expected):
    assert scale_plan(current, target, step) == expected
    assert plan(current, target, step) == expected


def test_scale_plan_rejects_zero_step_and_registers_filters():
    with pytest.raises(AnsibleFilterError):
        scale_plan(1, 3, 0)
    assert set(FilterModule().filters()) == {"k8s_scale_params", "scale_plan"}


def test_zero_needs_consent_in_both_backends():
    with pytest.raises(AnsibleFilterError, match="refusing to scale api to 0"):
        k8s_scale_params({"service": "api", "replicas": 0})
    assert check_scale_request("api", 0, 1, False) and not check_scale_request("api", 0, 1, True)
    assert "step >= 1" in check_scale_request("api", 2, 0, False)[0]


def test_replica_limit_from_fixed_ports_and_container_name():
    config = {"services": {
        "ephemeral": {"ports": [{"host_ip": "127.0.0.1", "target": 8000}]},
        "fixed": {"ports": [{"host_ip": "127.0.0.1", "target": 80, "published": "56101"}]},
        "ranged": {"ports": [{"target": 80, "published": "56110-56112"}]},
        "named": {"container_name": "db1"},
    }}
    assert replica_limit(config, "ephemeral") == (None, [])
    assert replica_limit(config, "fixed") == (1, ["fixed host port 127.0.0.1:56101"])
    assert replica_limit(config, "ranged")[0] == 3
    assert replica_limit(config, "named") == (1, ["container_name db1"])
