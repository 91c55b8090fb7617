"""The import rules of docs/architecture.md: each layer uses only the layer below it."""
import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PLUGINS = "ansible_collections.stackops.runbooks.plugins."


def _imported(path):
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
            names.update("%s.%s" % (node.module, alias.name) for alias in node.names)
        elif isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
    return names


def _collection_imports(path):
    """The collection's own packages a file imports: {'module_utils.pg', 'modules.x', ...}."""
    return {name[len(PLUGINS):] for name in _imported(path) if name.startswith(PLUGINS)}


def _is_module_utils(name):
    return name == "module_utils" or name.startswith("module_utils.")


def _files(folder):
    return sorted(p for p in (ROOT / folder).glob("*.py") if p.name != "__init__.py")


def test_modules_and_filters_import_only_module_utils():
    checked = 0
    for folder in ("plugins/modules", "plugins/filter"):
        for path in _files(folder):
            checked += 1
            wrong = sorted(name for name in _collection_imports(path) if not _is_module_utils(name))
            assert not wrong, "%s imports %s: share code through plugins/module_utils" % (path.relative_to(ROOT), wrong)
    assert checked >= 18


def test_module_utils_never_import_modules_or_filters():
    for path in _files("plugins/module_utils"):
        wrong = sorted(name for name in _collection_imports(path) if not _is_module_utils(name))
        assert not wrong, "%s imports %s" % (path.relative_to(ROOT), wrong)


def test_module_utils_have_no_import_cycle():
    graph = {}
    for path in _files("plugins/module_utils"):
        graph[path.stem] = {name.split(".")[1] for name in _collection_imports(path)
                            if name.startswith("module_utils.") and len(name.split(".")) > 1} - {path.stem}
    graph = {node: {n for n in edges if n in graph} for node, edges in graph.items()}
    done, path_stack = set(), []

    def visit(node):
        if node in path_stack:
            raise AssertionError("module_utils import cycle: %s" % " -> ".join(path_stack[path_stack.index(node):] + [node]))
        if node in done:
            return
        path_stack.append(node)
        for nxt in sorted(graph[node]):
            visit(nxt)
        path_stack.pop()
        done.add(node)

    for node in sorted(graph):
        visit(node)
    assert "pg" in graph and "compose" in graph


def test_the_cli_reaches_the_collection_only_through_ansible_runner():
    for path in sorted((ROOT / "src" / "stackops").glob("*.py")):
        wrong = sorted(name for name in _imported(path) if name.startswith(("ansible_collections", "ansible.")))
        assert not wrong, "%s imports %s: the CLI runs playbooks, it does not call collection code" % (
            path.relative_to(ROOT), wrong)


def test_architecture_page_names_only_paths_that_exist():
    text = (ROOT / "docs" / "architecture.md").read_text()
    paths = set(re.findall(r"`((?:src|plugins|roles|playbooks|docs|tests|meta|scripts|changelogs)/[A-Za-z0-9_./<>*-]*)`", text))
    assert len(paths) >= 10
    missing = []
    for item in sorted(paths):
        if "<" in item or "*" in item:
            folder = re.split(r"[<*]", item)[0].rsplit("/", 1)[0]
            if not (ROOT / folder).is_dir():
                missing.append(item)
        elif not (ROOT / item.rstrip("/")).exists():
            missing.append(item)
    assert not missing, "docs/architecture.md names paths that do not exist: %s" % missing


def _section(text, heading):
    match = re.search(r"^## %s\n(.*?)(?=^## |\Z)" % re.escape(heading), text, re.S | re.M)
    assert match, "docs/architecture.md has no section '## %s'" % heading
    return match.group(1)


def _named(section):
    return set(re.findall(r"`([A-Za-z0-9_./-]+)`", section))


def test_architecture_page_places_every_file_of_every_layer():
    """Every CLI file, playbook, role, module, module_utils file and filter is placed on the page, in its
    section, and the page places nothing that does not exist."""
    text = (ROOT / "docs" / "architecture.md").read_text()
    layers = [
        ("CLI", {p.name for p in (ROOT / "src" / "stackops").glob("*.py")}),
        ("Playbooks", {p.name for p in (ROOT / "playbooks").glob("*.yml")} | {"vars/route.yml"}),
        ("Roles, and the roles they call", {p.name for p in (ROOT / "roles").iterdir() if p.is_dir()}),
        ("Modules", {p.stem for p in _files("plugins/modules")}),
        ("module_utils", {p.name for p in _files("plugins/module_utils")} | {p.name for p in _files("plugins/filter")}),
    ]
    for heading, files in layers:
        named = _named(_section(text, heading))
        missing = sorted(files - named)
        assert not missing, "docs/architecture.md, section '%s', does not place %s" % (heading, missing)
    listed = set(re.findall(r"`([a-z0-9_]+)`", "".join(re.findall(r"^\| [a-zA-Z -]+ \| (.+) \|$",
                                                                   _section(text, "Modules"), re.M))))
    assert listed == layers[3][1], "the modules table names %s that do not exist" % sorted(listed - layers[3][1])
    roles_table = _section(text, "Roles, and the roles they call")
    rows = re.findall(r"^\| `([a-z_]+)` \| [^|]+ \| ([^|]+) \|$", roles_table, re.M)
    assert {role for role, _ in rows} == layers[2][1]
    calls = {role: set(re.findall(r"`([a-z_]+)`", called)) for role, called in rows}
    roles = layers[2][1]
    for role in sorted(roles):
        called = set()
        for path in (ROOT / "roles" / role / "tasks").glob("*.yml"):
            called.update(re.findall(r"name: stackops\.runbooks\.([a-z_]+)\s*$", path.read_text(), re.M))
        called = (called & roles) - {role}
        placed = calls[role] & roles
        assert called == placed, "roles/%s calls %s, docs/architecture.md says %s" % (role, sorted(called), sorted(placed))
