"""The claims table of docs/development.md: every safety claim names the tests that prove it, and those tests exist.

A test cell holds test ids (`integration/test_x.py::test_name`, relative to tests/) one per `<br>`, or `none` (a
claim no test backs yet: a gap, listed), or ids marked `pending:` (announced by work not merged yet: not checked
until the marker goes)."""
import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SECTION = "## Safety claims and the tests that prove them"
TEST_ID = re.compile(r"^`([\w/]+\.py)::(\w+)`$")


def claims_table():
    text = (ROOT / "docs" / "development.md").read_text()
    assert SECTION in text, "docs/development.md lost its section %r" % SECTION
    rows = []
    for line in text.split(SECTION, 1)[1].splitlines():
        if line.startswith("## "):
            break
        if not line.startswith("| ") or line.startswith("| claim ") or line.startswith("| --- "):
            continue
        cells = [cell.strip() for cell in line.strip().strip("|").split(" | ")]
        rows.append(cells)
    return rows


def existing_tests():
    """Every test function of tests/, as 'dir/test_file.py::name' (class methods as 'File.py::Class::name' too)."""
    found = set()
    for path in (ROOT / "tests").rglob("test_*.py"):
        relative = path.relative_to(ROOT / "tests").as_posix()
        for node in ast.parse(path.read_text()).body:
            if isinstance(node, ast.FunctionDef) and node.name.startswith("test_"):
                found.add("%s::%s" % (relative, node.name))
            elif isinstance(node, ast.Assign):  # a test made by a factory: `shapes, test_x = pair_tests(...)`
                for target in node.targets:
                    for name in (target.elts if isinstance(target, ast.Tuple) else [target]):
                        if isinstance(name, ast.Name) and name.id.startswith("test_"):
                            found.add("%s::%s" % (relative, name.id))
            elif isinstance(node, ast.ClassDef):
                for item in node.body:
                    if isinstance(item, ast.FunctionDef) and item.name.startswith("test_"):
                        found.add("%s::%s::%s" % (relative, node.name, item.name))
    return found


def test_every_claim_names_tests_that_exist():
    rows = claims_table()
    assert len(rows) >= 50, "the claims table shrank to %d rows" % len(rows)
    tests = existing_tests()
    problems, gaps = [], []
    for cells in rows:
        if len(cells) != 3 or not all(cells):
            problems.append("malformed row (claim | where | test): %r" % (cells,))
            continue
        claim, dummy, cell = cells
        if cell == "none":
            gaps.append(claim)
            continue
        for item in cell.split("<br>"):
            if item.startswith("pending: "):
                continue
            match = TEST_ID.match(item)
            if not match:
                problems.append("%r: %r is not `dir/test_file.py::test_name`, `pending: ...` or none" % (claim, item))
            elif "%s::%s" % match.groups() not in tests:
                problems.append("%r names %s, which does not exist" % (claim, item))
    assert not problems, "\n".join(problems)
    # Every claim has its test now: a new claim without one is a gap this names, never a silent one.
    assert not gaps, "claims without a test: %s" % gaps


def test_the_parser_sees_what_a_reader_sees():
    rows = claims_table()
    assert all(len(cells) == 3 for cells in rows)
    assert any(cells[2].startswith("`integration/") for cells in rows)
