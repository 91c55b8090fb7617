#!/usr/bin/env python3
"""Keep the generated parts of roles/*/README.md in step with each role's meta/argument_specs.yml.

A role README has hand-written sections (example, failure modes) and two generated blocks between
markers: the purpose (the spec's short_description and description) and the variables table (every
option, its type, whether it is required and its effective default: the value in defaults/main.yml,
which is what the role really uses, else the spec's default). Edit the spec, then run

    python scripts/role_readmes.py          # rewrite the generated blocks
    python scripts/role_readmes.py --check  # exit 1 when a README is missing or stale (the unit test does this)
"""
import argparse
import json
import re
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
BLOCKS = ("purpose", "variables")
MARKUP = [
    (re.compile(r"L\(([^)]+?),\s*([^)]+?)\)"), r"[\1](\2)"),
    (re.compile(r"U\(([^)]+?)\)"), r"<\1>"),
    (re.compile(r"[MCOVR]\(([^)]+?)\)"), r"`\1`"),
    (re.compile(r"I\(([^)]+?)\)"), r"*\1*"),
    (re.compile(r"B\(([^)]+?)\)"), r"**\1**"),
]


def markdown(text):
    """Ansible doc markup (M(), C(), I(), L(), ...) as Markdown."""
    text = " ".join(str(text).split())
    for pattern, replacement in MARKUP:
        text = pattern.sub(replacement, text)
    return text


def _paragraphs(value):
    if value is None:
        return []
    return [markdown(item) for item in (value if isinstance(value, list) else [value])]


def _cell(text):
    return text.replace("|", "\\|")


def _default_text(value):
    if isinstance(value, str):
        return "`%s`" % value if value else '`""`'
    return "`%s`" % json.dumps(value)


def load_role(role_dir):
    """(entry points from the argument spec, defaults/main.yml as a dict)."""
    spec = yaml.safe_load((role_dir / "meta" / "argument_specs.yml").read_text()) or {}
    defaults_file = role_dir / "defaults" / "main.yml"
    defaults = (yaml.safe_load(defaults_file.read_text()) if defaults_file.exists() else None) or {}
    return spec.get("argument_specs") or {}, defaults


def render_purpose(role, entry_points):
    main = entry_points.get("main") or next(iter(entry_points.values()), {})
    lines = ["# stackops.runbooks.%s" % role, ""]
    short = main.get("short_description")
    if short:
        lines += ["%s." % markdown(short).rstrip("."), ""]
    for paragraph in _paragraphs(main.get("description")):
        lines += [paragraph, ""]
    return "\n".join(lines).rstrip() + "\n"


def render_variables(entry_points, defaults):
    lines = ["## Variables", "",
             "Generated from `meta/argument_specs.yml` (ansible-core validates them before the role runs). The "
             "default is the one the role applies, from `defaults/main.yml`; *required* ones have none.", ""]
    for name, entry in entry_points.items():
        options = entry.get("options") or {}
        if len(entry_points) > 1 or name != "main":
            lines += ["### Entry point `%s`" % name, ""]
        if not options:
            lines += ["This entry point takes no variables.", ""]
            continue
        lines += ["| variable | type | default | description |", "| --- | --- | --- | --- |"]
        for option, spec in sorted(options.items()):
            spec = spec or {}
            kind = spec.get("type", "str")
            if spec.get("elements"):
                kind = "%s of %s" % (kind, spec["elements"])
            if option in defaults:
                default = _default_text(defaults[option])
            elif "default" in spec:
                default = _default_text(spec["default"])
            else:
                default = "*required*" if spec.get("required") else ""
            description = " ".join(_paragraphs(spec.get("description")))
            if spec.get("choices"):
                description += " Choices: %s." % ", ".join("`%s`" % choice for choice in spec["choices"])
            if spec.get("no_log"):
                description += " Secret (`no_log`)."
            lines.append("| `%s` | %s | %s | %s |" % (option, kind, _cell(default), _cell(description.strip())))
        lines.append("")
    return "\n".join(lines).rstrip() + "\n"


def _marker(block, end=False):
    if end:
        return "<!-- end generated %s -->" % block
    return "<!-- generated %s: from meta/argument_specs.yml by scripts/role_readmes.py, do not edit -->" % block


def replace_block(text, block, content):
    start, end = _marker(block), _marker(block, end=True)
    pattern = re.compile(re.escape(start) + r"\n.*?" + re.escape(end), re.S)
    if not pattern.search(text):
        raise ValueError("the README has no %r block (%s ... %s)" % (block, start, end))
    return pattern.sub(lambda _: "%s\n%s%s" % (start, content, end), text, count=1)


def expected_readme(role_dir):
    """The README with its generated blocks current, or ValueError when it has none to fill."""
    readme = role_dir / "README.md"
    if not readme.exists():
        raise ValueError("%s is missing" % readme.relative_to(ROOT))
    entry_points, defaults = load_role(role_dir)
    text = readme.read_text()
    text = replace_block(text, "purpose", render_purpose(role_dir.name, entry_points))
    return replace_block(text, "variables", render_variables(entry_points, defaults))


def role_dirs(root=ROOT):
    return sorted(path.parent.parent for path in (root / "roles").glob("*/meta/argument_specs.yml"))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="report stale READMEs instead of rewriting them")
    args = parser.parse_args(argv)
    problems = []
    for role_dir in role_dirs():
        readme = role_dir / "README.md"
        try:
            wanted = expected_readme(role_dir)
        except ValueError as exc:
            problems.append(str(exc))
            continue
        if readme.read_text() != wanted:
            if args.check:
                problems.append("%s is stale: run python scripts/role_readmes.py" % readme.relative_to(ROOT))
            else:
                readme.write_text(wanted)
                print("updated %s" % readme.relative_to(ROOT))
    for problem in problems:
        print(problem, file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
