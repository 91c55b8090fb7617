"""Every module documents check_mode, diff_mode and its action group through the attributes doc fragment,
and the documented action group is the one meta/runtime.yml puts it in."""
import re
from pathlib import Path

import yaml

from support.module_docs import module_options

ROOT = Path(__file__).resolve().parents[2]
BASE = "stackops.runbooks.attributes"
KINDS = {BASE + ".info_module", BASE + ".changes_state"}


def _documentation(path):
    match = re.search(r"^DOCUMENTATION\s*=\s*r?('''|\"\"\")(.*?)\1", path.read_text(), re.S | re.M)
    assert match, "%s has no DOCUMENTATION" % path.name
    return yaml.safe_load(match.group(2))


def _modules():
    return sorted(p for p in (ROOT / "plugins" / "modules").glob("*.py") if p.stem != "__init__")


def _groups():
    groups = yaml.safe_load((ROOT / "meta" / "runtime.yml").read_text()).get("action_groups") or {}
    membership = {}
    for group, modules in groups.items():
        for module in modules:
            if isinstance(module, str):
                membership.setdefault(module.split(".")[-1], []).append(group)
    return membership


def test_every_module_extends_the_attributes_fragments():
    membership = _groups()
    modules = _modules()
    assert len(modules) >= 18
    for path in modules:
        fragments = _documentation(path).get("extends_documentation_fragment") or []
        assert BASE in fragments, "%s does not extend %s" % (path.name, BASE)
        kinds = [f for f in fragments if f in KINDS]
        assert len(kinds) == 1, "%s needs exactly one of %s, has %s" % (path.name, sorted(KINDS), kinds)
        groups = sorted(membership.get(path.stem, []))
        wanted = [BASE + ".actiongroup_" + "_".join(groups)] if groups else []
        documented = [f for f in fragments if f.startswith(BASE + ".actiongroup_")]
        assert documented == wanted, "%s is in action groups %s (meta/runtime.yml) but documents %s" % (
            path.name, groups, documented)


def test_info_modules_say_so_and_change_nothing():
    for path in _modules():
        fragments = _documentation(path).get("extends_documentation_fragment") or []
        source = path.read_text()
        if path.stem.endswith("_info"):
            assert BASE + ".info_module" in fragments, path.name
        if BASE + ".info_module" in fragments:
            assert not re.search(r"changed['\"]?\]?\s*=\s*True|changed=True", source), (
                "%s is documented as changing nothing but sets changed=True" % path.name)


def test_the_fragment_declares_every_group_fragment_used():
    fragment = (ROOT / "plugins" / "doc_fragments" / "attributes.py").read_text()
    used = {f.split(".")[-1].upper() for path in _modules()
            for f in _documentation(path).get("extends_documentation_fragment") or [] if f.startswith(BASE + ".")}
    for name in used:
        assert re.search(r"^    %s = " % name, fragment, re.M), "attributes.py lacks %s" % name


def test_each_action_group_lists_every_module_that_takes_its_options():
    """An action group is an option set: every module that takes all of the options the play header gives the group
    (playbooks/vars/route.yml) is in it, and no module that lacks one of them."""
    route = yaml.safe_load((ROOT / "playbooks" / "vars" / "route.yml").read_text())["__stackops_route"]
    groups = yaml.safe_load((ROOT / "meta" / "runtime.yml").read_text())["action_groups"]
    routing = yaml.safe_load((ROOT / "meta" / "runtime.yml").read_text())["plugin_routing"]["modules"]
    options = {path.stem: set(module_options(path.stem)) for path in _modules()}
    assert {"login_host", "project_dir", "compose_service", "backup_dir"} <= options["pg_backup"]
    for group, members in groups.items():
        wanted = set(route[group])
        takes = sorted(name for name, has in options.items() if wanted <= has)
        # An old name that redirects (plugin_routing) stays in its new name's groups, so old playbooks keep working.
        listed = sorted(name for name in members if name not in routing)
        assert listed == takes, "group %s (%s): lists %s, the modules that take these options are %s" % (
            group, sorted(wanted), listed, takes)
        for old in (name for name in members if name in routing):
            new = routing[old]["redirect"].split(".")[-1]
            assert new in members, "%s redirects to %s, which is not in group %s" % (old, new, group)
