"""The AWX credential types inject variables some role reads; a renamed variable must not leave a credential dead."""
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]


def _declared_role_variables():
    names = set()
    for spec in REPO.glob("roles/*/meta/argument_specs.yml"):
        for entry in (yaml.safe_load(spec.read_text())["argument_specs"] or {}).values():
            names.update((entry.get("options") or {}).keys())
    return names


def _credential_types():
    play = yaml.safe_load((REPO / "awx" / "configure.yml").read_text())
    for document in play:
        for task in document.get("tasks", []):
            if "awx.awx.credential_type" in task:
                return task["loop"]
    raise AssertionError("awx/configure.yml has no awx.awx.credential_type task")


def test_every_injected_variable_is_declared_by_a_role():
    declared = _declared_role_variables()
    types = _credential_types()
    assert types
    for credential in types:
        injected = credential["injectors"].get("extra_vars", {})
        assert injected, credential["name"]
        missing = sorted(set(injected) - declared)
        assert not missing, "credential %r injects variables no role declares: %s" % (credential["name"], missing)


def test_secret_inputs_are_marked_secret():
    for credential in _credential_types():
        for field in credential["inputs"]["fields"]:
            if any(word in field["id"] for word in ("secret", "key", "identity", "token", "url")) \
                    and field["id"] != "access_key":
                assert field.get("secret") is True, "%s: input %s must be secret" % (credential["name"], field["id"])
