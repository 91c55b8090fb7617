"""No test asserts a duration or waits out a delay: wall-clock bounds pass or fail with the machine's load, not with
the code. Tests synchronise on an event, a state or an order instead (docs/development.md, Rules). This scans every
test file for assertions that compare a clock reading or a duration-like field with a bound, and for sleeps outside
a polling loop, so none can come back."""
import ast
import re
from pathlib import Path

TESTS = Path(__file__).resolve().parents[1]
CLOCKS = {"time", "monotonic", "perf_counter", "monotonic_ns", "time_ns", "perf_counter_ns"}
DURATION_NAME = re.compile(r"(duration|elapsed|seconds|time_to|latency|_ms$|took|runtime)", re.I)
MOMENT_NAME = re.compile(r"(_at$|^at$|started|finished|created)", re.I)
ORDERING = (ast.Lt, ast.LtE, ast.Gt, ast.GtE)


def clock_read(node):
    """A call of time.time()/time.monotonic()/... or of a bare monotonic()/perf_counter()."""
    if not isinstance(node, ast.Call):
        return False
    func = node.func
    if isinstance(func, ast.Attribute) and func.attr in CLOCKS and isinstance(func.value, ast.Name) and \
            func.value.id == "time":
        return True
    return isinstance(func, ast.Name) and func.id in CLOCKS - {"time"}


def _named(child, pattern):
    if isinstance(child, ast.Subscript) and isinstance(child.slice, ast.Constant) and isinstance(child.slice.value, str):
        return bool(pattern.search(child.slice.value))
    if isinstance(child, ast.Attribute):
        return bool(pattern.search(child.attr))
    return isinstance(child, ast.Name) and bool(pattern.search(child.id))


def duration_like(node):
    """An expression that reads a clock, names a duration (a key, attribute or variable like ``elapsed``), or
    subtracts moments (``done_at - ready_at``). Two moments compared with each other are an order, not this."""
    for child in ast.walk(node):
        if clock_read(child) or _named(child, DURATION_NAME):
            return True
        if isinstance(child, ast.BinOp) and isinstance(child.op, ast.Sub) and any(
                _named(part, MOMENT_NAME) for side in (child.left, child.right) for part in ast.walk(side)):
            return True
    return False


def bound(node):
    """A number, or arithmetic on numbers: what a wall-clock assertion compares with."""
    return all(isinstance(child, (ast.Constant, ast.BinOp, ast.UnaryOp, ast.operator, ast.unaryop))
               and (not isinstance(child, ast.Constant) or isinstance(child.value, (int, float)))
               for child in ast.walk(node))


def duration_assertions(source, filename="<test>"):
    """(line, text) of every assert that compares a duration-like expression with a bound or another duration."""
    found = []
    for node in ast.walk(ast.parse(source, filename)):
        if not isinstance(node, ast.Assert):
            continue
        for compare in (child for child in ast.walk(node.test) if isinstance(child, ast.Compare)):
            operands = [compare.left] + list(compare.comparators)
            for index, op in enumerate(compare.ops):
                left, right = operands[index], operands[index + 1]
                timed = duration_like(left) or duration_like(right)
                if not timed:
                    continue
                if isinstance(op, ORDERING) and (bound(left) or bound(right) or
                                                 (duration_like(left) and duration_like(right))):
                    found.append((node.lineno, ast.get_source_segment(source, node) or ""))
                    break
    return found


def test_no_test_asserts_a_duration():
    offenders = []
    for path in sorted(TESTS.rglob("*.py")):
        if path == Path(__file__).resolve():
            continue
        source = path.read_text()
        for line, text in duration_assertions(source, str(path)):
            offenders.append("%s:%d: %s" % (path.relative_to(TESTS.parent), line, text.splitlines()[0]))
    assert not offenders, "wall-clock assertions (assert an event, a state or an order instead):\n" + "\n".join(offenders)


def test_the_scan_finds_what_it_must():
    caught = [
        "assert time.monotonic() - start < 5",
        "assert res['time_to_healthy'] >= 2.9",
        "assert behaviour.first_ok_at - behaviour.ready_at <= 1.0 + 0.75",
        "assert 1 < verdict['age_seconds'] < 3600",
        "assert all(tier['seconds'] > 0 for tier in report['tiers'])",
        "assert float(report['total_seconds']) >= sum(tier['seconds'] for tier in report['tiers']) - 0.01",
        "assert elapsed < 30",
        "assert perf_counter() - t0 <= 2",
    ]
    for text in caught:
        assert duration_assertions(text), text
    passed = [
        "assert res['time_to_healthy'] is not None",
        "assert res['attempts'] == behaviour.requests > 1",
        "assert float(report['total_seconds']) == pytest.approx(sum(t['seconds'] for t in tiers), abs=0.01)",
        "assert parse_duration('90m') == 5400",
        "assert first['finished'] < second['started']",
        "assert max(postgres) < min(api)",
        "assert len(rows) > 3",
    ]
    for text in passed:
        assert not duration_assertions(text), text


def bare_sleeps(source, filename="<test>"):
    """Lines of ``time.sleep(...)`` calls outside any loop: a delay a test waits out instead of a state it polls."""
    tree = ast.parse(source, filename)
    parents = dict((child, node) for node in ast.walk(tree) for child in ast.iter_child_nodes(node))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "sleep" and \
                isinstance(node.func.value, ast.Name) and node.func.value.id == "time":
            parent = parents.get(node)
            while parent is not None and not isinstance(parent, (ast.While, ast.For)):
                parent = parents.get(parent)
            if parent is None:
                found.append(node.lineno)
    return found


# Bare sleeps in files other sessions are rewriting now (their owners replace them with waits on a state); an
# entry must go once its sleep does, and no file may gain one.
KNOWN_SLEEPS = {
    "tests/integration/test_offsite_pitr.py": 1,
}


def test_no_test_waits_out_a_delay():
    found = {}
    for path in sorted(TESTS.rglob("*.py")):
        lines = bare_sleeps(path.read_text(), str(path))
        if lines:
            found[str(path.relative_to(TESTS.parent))] = lines
    unexpected = dict((name, lines) for name, lines in found.items() if len(lines) > KNOWN_SLEEPS.get(name, 0))
    assert not unexpected, "time.sleep() outside a polling loop (wait for a state instead): %s" % unexpected
    gone = sorted(name for name, count in KNOWN_SLEEPS.items() if len(found.get(name, [])) < count)
    assert not gone, "fewer sleeps than KNOWN_SLEEPS says in %s: lower or remove the entry" % gone
