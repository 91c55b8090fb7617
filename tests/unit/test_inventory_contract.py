"""docs/inventory.md is the one declaration of the shared inventory contract; the roles, playbooks and
module argument specs agree with it."""
import re
from pathlib import Path

import yaml

from ansible_collections.stackops.runbooks.plugins.module_utils.compose import compose_argument_spec
from ansible_collections.stackops.runbooks.plugins.module_utils.pg import pg_connection_spec, pg_tools_spec

ROOT = Path(__file__).resolve().parents[2]
ROW = re.compile(r"^\| `(stackops_[a-z0-9_]+)` \| ([a-z]+)(?: of ([a-z]+))? \| (—|`[^`]*`) \| (—|`[a-z_]+`) \| (.+) \|$")
NO_DEFAULT = object()
UNSET = (None, "")  # default(none) / default(''): "not set", for a variable the contract gives no default
GUARD = re.compile(r"\b(stackops_[a-z0-9_]+)\s*\|\s*default\(\s*([^()]*?)\s*\)")
# Extra module options a contract variable fills besides the shared specs.
OTHER_OPTIONS = {"urls": {"type": "list", "elements": "dict", "default": []},
                 "backup_dir": {"type": "path"}}


def contract():
    text = (ROOT / "docs" / "inventory.md").read_text()
    rows = {}
    for line in text.splitlines():
        match = ROW.match(line)
        if match:
            name, kind, elements, default, option, meaning = match.groups()
            rows[name] = {"type": kind, "elements": elements, "meaning": meaning,
                          "default": NO_DEFAULT if default == "—" else yaml.safe_load(default.strip("`")),
                          "option": None if option == "—" else option.strip("`")}
    return rows


def role_specs():
    """{role: {option: spec}} over every entry point."""
    specs = {}
    for path in sorted((ROOT / "roles").glob("*/meta/argument_specs.yml")):
        options = {}
        for entry in (yaml.safe_load(path.read_text()).get("argument_specs") or {}).values():
            options.update(entry.get("options") or {})
        specs[path.parent.parent.name] = options
    return specs


def yaml_sources():
    for folder in ("roles", "playbooks"):
        for path in sorted((ROOT / folder).rglob("*")):
            if path.is_file() and path.suffix in (".yml", ".yaml", ".j2"):
                yield path


def test_the_table_parses():
    rows = contract()
    assert {"stackops_compose_project_dir", "stackops_db_host", "stackops_health_urls", "stackops_backup_dir"} <= set(rows)
    assert all(row["meaning"] for row in rows.values())


def test_role_specs_declare_contract_variables_as_the_contract_does():
    rows = contract()
    problems = []
    for role, options in role_specs().items():
        for name, spec in options.items():
            if name not in rows:
                continue
            row, spec = rows[name], spec or {}
            if spec.get("type", "str") != row["type"] or spec.get("elements") != row["elements"]:
                problems.append("%s: %s is %s/%s in the spec, %s/%s in docs/inventory.md" % (
                    role, name, spec.get("type", "str"), spec.get("elements"), row["type"], row["elements"]))
            if "default" in spec and (row["default"] is NO_DEFAULT or spec["default"] != row["default"]):
                problems.append("%s: %s documents default %r, the contract %s" % (
                    role, name, spec["default"], "has none" if row["default"] is NO_DEFAULT else repr(row["default"])))
    assert not problems, "\n".join(problems)


def test_every_contract_variable_is_read_by_a_role():
    specs = role_specs()
    unused = [name for name in contract() if not any(name in options for options in specs.values())]
    assert not unused, "in docs/inventory.md but in no role's argument spec: %s" % unused


def test_shared_variables_are_in_the_contract():
    """A variable two roles declare, named after neither, is shared: it belongs in docs/inventory.md."""
    specs = role_specs()
    roles = sorted(specs, key=len, reverse=True)
    declared_by = {}
    for role, options in specs.items():
        for name in options:
            declared_by.setdefault(name, set()).add(role)
    rows = contract()
    missing = sorted(name for name, owners in declared_by.items() if len(owners) > 1 and name not in rows
                     and not any(name == "stackops_" + r or name.startswith("stackops_%s_" % r) for r in roles))
    assert not missing, "shared by several roles but not declared in docs/inventory.md: %s" % missing


def test_roles_fall_back_only_to_the_contract_default():
    rows = contract()
    problems = []
    for path in yaml_sources():
        for name, fallback in GUARD.findall(path.read_text()):
            if name not in rows or fallback == "omit":
                continue
            wanted = rows[name]["default"]
            try:
                value = None if fallback in ("none", "None") else yaml.safe_load(fallback)  # Jinja's none
            except yaml.YAMLError:
                value = fallback
            if wanted is NO_DEFAULT and value in UNSET:
                continue
            if wanted is NO_DEFAULT or value != wanted:
                problems.append("%s: %s | default(%s); the contract default is %s" % (
                    path.relative_to(ROOT), name, fallback, "none" if wanted is NO_DEFAULT else repr(wanted)))
    assert not problems, "\n".join(problems)


def test_module_option_defaults_equal_the_contract_defaults():
    modules = dict(OTHER_OPTIONS)
    modules.update(compose_argument_spec())
    modules.update(pg_connection_spec())
    modules.update(pg_tools_spec())
    problems = []
    for name, row in contract().items():
        if not row["option"]:
            continue
        assert row["option"] in modules, "%s feeds %s, which no shared module spec has" % (name, row["option"])
        option = modules[row["option"]]
        if option.get("type", "str") != row["type"] or option.get("elements") != row["elements"]:
            problems.append("%s is %s/%s, module option %s is %s/%s" % (
                name, row["type"], row["elements"], row["option"], option.get("type", "str"), option.get("elements")))
        if row["default"] is not NO_DEFAULT and option.get("default") != row["default"]:
            problems.append("%s defaults to %r, module option %s to %r" % (
                name, row["default"], row["option"], option.get("default")))
    assert not problems, "\n".join(problems)


EXPRESSION = re.compile(r"\{\{(.*?)\}\}", re.S)


def test_a_role_reads_an_optional_contract_variable_only_guarded():
    """Outside defaults/main.yml, a bare {{ stackops_X }} is undefined when the inventory leaves X out: the role
    must require X in its argument spec, set it in defaults/main.yml, or read it with | default(...)."""
    rows = contract()
    specs = role_specs()
    problems = []
    for role_dir in sorted((ROOT / "roles").iterdir()):
        options = specs.get(role_dir.name)
        if options is None:
            continue
        defaults_file = role_dir / "defaults" / "main.yml"
        defaults = (yaml.safe_load(defaults_file.read_text()) if defaults_file.exists() else None) or {}
        for path in sorted(role_dir.rglob("*")):
            if not path.is_file() or path.suffix not in (".yml", ".j2") or "meta" in path.parts:
                continue
            for expression in EXPRESSION.findall(path.read_text()):
                # A name inside a string literal (an undef() hint naming the variable to set) is not a read.
                expression = re.sub(r"'[^']*'|\"[^\"]*\"", "''", expression)
                for name in rows:
                    if name in defaults or (options.get(name) or {}).get("required"):
                        continue
                    if re.search(r"\b%s\s+is\s+(not\s+)?defined" % name, expression):
                        continue
                    for use in re.finditer(r"\b%s\b" % name, expression):
                        if not re.match(r"\s*\|\s*default\b", expression[use.end():]):
                            problems.append("%s: bare {{ %s }} (not required in its argument spec, not in defaults/main.yml, no | default)" % (
                                path.relative_to(ROOT), name))
                            break
    assert not problems, "\n".join(sorted(set(problems)))


PRIVATE = re.compile(r"(?<![A-Za-z0-9_])(_+)stackops_([a-z0-9_]+)")


def test_one_private_prefix_named_after_its_role_or_playbook():
    """Private variables are __stackops_<role>_* (or __stackops_<playbook>_* in a playbook), never _stackops_*."""
    roles = sorted(path.name for path in (ROOT / "roles").iterdir() if path.is_dir())
    problems = []
    for path in yaml_sources():
        relative = path.relative_to(ROOT)
        # A playbook's own, and __stackops_route: the play header every playbook shares (playbooks/vars/route.yml),
        # which the result role checks is there.
        owners = roles + ["route"] + ([path.stem] if relative.parts[0] == "playbooks" else [])
        for underscores, rest in PRIVATE.findall(path.read_text()):
            name = underscores + "stackops_" + rest
            if underscores != "__":
                problems.append("%s: %s (the private prefix is __stackops_)" % (relative, name))
            elif not any(rest == owner or rest.startswith(owner + "_") for owner in owners):
                problems.append("%s: %s names no role (__stackops_<role>_...)" % (relative, name))
    assert not problems, "\n".join(sorted(set(problems)))


# ------------------------------------------------------------------ the one route (playbooks/vars/route.yml)
ROUTE_FILE = ROOT / "playbooks" / "vars" / "route.yml"
HEADER = re.compile(r"^  vars_files: \[vars/route\.yml\]\n  module_defaults:\n((?:    group/stackops\.runbooks\.[a-z_]+: .*\n)+)", re.M)
# Groups the route fills from variables that are not the contract's (the pitr role's own, see route.yml).
NOT_CONTRACT = {"pitr"}


def route():
    return yaml.safe_load(ROUTE_FILE.read_text())["__stackops_route"]


def action_groups():
    return yaml.safe_load((ROOT / "meta" / "runtime.yml").read_text())["action_groups"]


def test_every_procedure_playbook_sets_every_group_from_the_route_in_its_header():
    wanted = "".join('    group/stackops.runbooks.%s: "{{ __stackops_route.%s }}"\n' % (group, group) for group in route())
    assert set(route()) == set(action_groups()), "route.yml fills %s, meta/runtime.yml has %s" % (
        sorted(route()), sorted(action_groups()))
    playbooks = [path for path in sorted((ROOT / "playbooks").glob("*.yml")) if path.stem != "init"]
    assert len(playbooks) >= 11
    for path in playbooks:
        plays = [play for play in yaml.safe_load(path.read_text()) if "hosts" in play]
        headers = HEADER.findall(path.read_text())
        assert len(headers) == len(plays) and all(header == wanted for header in headers), (
            "%s: every play starts with the header of playbooks/vars/route.yml:\n%s" % (
                path.relative_to(ROOT), "  vars_files: [vars/route.yml]\n  module_defaults:\n" + wanted))


def test_the_route_feeds_each_contract_variable_to_its_option_and_nothing_else():
    rows = contract()
    fed = {}
    for group, options in route().items():
        for option, value in options.items():
            match = re.fullmatch(r"\{\{ (stackops_[a-z0-9_]+) \| default\(omit\) \}\}", value)
            assert match, "route.yml %s.%s: %r; the route reads one variable, unset means omitted" % (group, option, value)
            name = match.group(1)
            if group in NOT_CONTRACT:
                assert name not in rows, "%s is in the contract: route it through a contract group" % name
                continue
            assert name in rows, "route.yml %s.%s reads %s, which docs/inventory.md does not declare" % (group, option, name)
            fed.setdefault(name, set()).add(option)
    for name, row in rows.items():
        # stackops_health_urls fills urls of the health checks, which each procedure picks from (not a group option).
        if row["option"] and row["option"] != "urls":
            assert row["option"] in fed.get(name, ()), "%s feeds %s (docs/inventory.md), the route does not" % (
                name, row["option"])


def test_no_role_passes_a_routed_option_by_hand():
    """The connection, compose and service options reach modules only through the play header; the other routed
    options (backup_dir, pitr_dir, ...) may be given by hand only with another value than the route's."""
    by_hand_never = {option for group in ("postgresql", "compose", "db_service", "scratch_check")
                     for option in route()[group]}
    groups = action_groups()
    module = re.compile(r"^stackops\.runbooks\.([a-z0-9_]+)$")
    problems = []

    def walk(node, path):
        if isinstance(node, list):
            for item in node:
                walk(item, path)
        elif isinstance(node, dict):
            if "module_defaults" in node:
                problems.append("%s: task %r sets module_defaults; the play header does" % (path, node.get("name")))
            for key, args in node.items():
                name = module.match(str(key))
                if name and isinstance(args, dict):
                    routed = {option: value for group, options in route().items() if name.group(1) in groups[group]
                              for option, value in options.items()}
                    for option, value in args.items():
                        variable = re.search(r"stackops_[a-z0-9_]+", routed.get(option, ""))
                        if option in by_hand_never or (variable and re.search(
                                r"\{\{\s*%s\s*[|}]" % variable.group(0), str(value))):
                            problems.append("%s: task %r passes %s by hand" % (path, node.get("name"), option))
            for value in node.values():
                walk(value, path)

    for path in sorted((ROOT / "roles").glob("*/tasks/*.yml")):
        walk(yaml.safe_load(path.read_text()), path.relative_to(ROOT))
    assert not problems, "\n".join(problems)


def test_the_db_service_has_no_default_anywhere():
    assert contract()["stackops_db_service"]["default"] is NO_DEFAULT
    for path in yaml_sources():
        assert not re.search(r"stackops_db_service\s*\|\s*default\(\s*['\"][^'\"]", path.read_text()), (
            "%s gives stackops_db_service a default; a service name is the stack's own" % path.relative_to(ROOT))
    assert "default" not in pg_tools_spec()["compose_service"]


def test_the_unpublished_database_host_is_the_one_the_modules_resolve():
    """The contract names the form of stackops_db_host for a database without a published port; compose.py parses
    exactly that form (and nothing else) as a compose service to look up at connect time."""
    from ansible_collections.stackops.runbooks.plugins.module_utils.compose import parse_service_host, service_host
    meaning = contract()["stackops_db_host"]["meaning"]
    documented = re.search(r"`(compose:<project>/<service>)`", meaning)
    assert documented, meaning
    assert service_host("<project>", "<service>") == documented.group(1)
    assert parse_service_host("compose:shop/db") == ("shop", "db")
    assert parse_service_host("127.0.0.1") is None and parse_service_host("db.internal") is None
