"""The CLI package's shape: no import cycles between its modules, and one duration formatter."""
import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "src" / "stackops"


def _imports(path):
    """Package modules imported anywhere in the file, including imports inside functions."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.level == 1:
            if node.module:
                found.add(node.module.split(".")[0])
            else:
                found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("stackops."):
            found.add(node.module.split(".")[1])
    return found


def _graph():
    modules = {path.stem: path for path in PACKAGE.glob("*.py") if path.stem != "__init__"}
    return {name: sorted(_imports(path) & set(modules)) for name, path in modules.items()}


def _cycle(graph):
    """One import cycle as a list of module names, or None."""
    state = {}

    def visit(node, stack):
        state[node] = "open"
        for nxt in graph[node]:
            if state.get(nxt) == "open":
                return stack[stack.index(nxt):] + [nxt]
            if nxt not in state:
                found = visit(nxt, stack + [nxt])
                if found:
                    return found
        state[node] = "done"
        return None

    for node in sorted(graph):
        if node not in state:
            found = visit(node, [node])
            if found:
                return found
    return None


def test_the_package_has_modules_to_check():
    graph = _graph()
    assert {"cli", "parser", "errors", "schedule", "report", "rpo", "runmodel", "units"} <= set(graph)
    assert "parser" in graph["cli"] and "parser" in graph["schedule"]


def test_no_import_cycle_between_cli_modules():
    assert _cycle(_graph()) is None


def test_the_cycle_detector_sees_a_cycle():
    assert _cycle({"a": ["b"], "b": ["c"], "c": ["a"]}) == ["a", "b", "c", "a"]
    assert _cycle({"a": ["b"], "b": []}) is None


def test_the_parser_and_the_report_renderer_do_not_import_what_runs_or_judges():
    graph = _graph()
    assert not set(graph["parser"]) & {"cli", "schedule", "execution", "report", "rpo"}
    assert "cli" not in graph["report"] and "report" not in graph["rpo"]


def test_one_duration_formatter():
    definers = sorted(path.stem for path in PACKAGE.glob("*.py")
                      for node in ast.walk(ast.parse(path.read_text()))
                      if isinstance(node, ast.FunctionDef) and "duration" in node.name
                      and node.name not in ("parse_duration",))
    assert definers == ["units"], definers
