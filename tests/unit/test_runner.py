"""scripts/test.sh, the runner CI trusts, run for real on a scratch checkout with a tiny test set: it must fail
when no layer runs, when a layer runs no test, and when a test is skipped or xfailed without an entry (with its
reason) in the allow-list; and it must pass what is allowed."""
import os
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
VENV = Path(sys.executable).resolve().parents[1] if (Path(sys.executable).parent / "pytest").exists() else ROOT / ".venv"

PASSING = "def test_passes():\n    assert 1 + 1 == 2\n"
SKIPPED = "import pytest\n\n\ndef test_{name}():\n    pytest.skip('{name} is not ready')\n"
XFAILED = "import pytest\n\n\n@pytest.mark.xfail(reason='known bug')\ndef test_known_bug():\n    assert False\n"


def scratch_checkout(root, tests, allowed=""):
    """A checkout with the real scripts/test.sh, pytest configured like ours, and ``tests`` ({file: source})."""
    (root / "scripts").mkdir(parents=True)
    shutil.copy(ROOT / "scripts" / "test.sh", root / "scripts" / "test.sh")
    (root / "pyproject.toml").write_text('[tool.pytest.ini_options]\npythonpath = ["%s"]\n' % (ROOT / "tests"))
    (root / "tests" / "unit").mkdir(parents=True)
    (root / "tests" / "conftest.py").write_text('pytest_plugins = ["support.outcomes"]\n')
    (root / "tests" / "allowed-skips.txt").write_text(allowed)
    for name, source in tests.items():
        (root / "tests" / "unit" / name).write_text(source)
    return root


def run_layers(root, layers="unit"):
    # Only the plugin under test (tests/conftest.py's pytest_plugins), not every installed one: a faster start.
    env = dict(os.environ, STACKOPS_VENV=str(VENV), STACKOPS_TEST_LAYERS=layers, PYTEST_DISABLE_PLUGIN_AUTOLOAD="1")
    env.pop("STACKOPS_ALLOWED_SKIPS", None)
    return subprocess.run(["bash", str(root / "scripts" / "test.sh")], capture_output=True, text=True, env=env,
                          timeout=300)


def test_the_runner_fails_unless_tests_ran_and_every_skip_is_allowed(tmp_path):
    checkouts = {
        "allowed": scratch_checkout(tmp_path / "allowed", {
            "test_a.py": PASSING, "test_b.py": SKIPPED.format(name="listed")},
            allowed="# comment\n\ntests/unit/test_b.py::test_listed -- waits for the upstream fix\n"),
        "unlisted": scratch_checkout(tmp_path / "unlisted", {
            "test_a.py": PASSING, "test_b.py": SKIPPED.format(name="quiet"), "test_c.py": XFAILED,
            "test_d.py": SKIPPED.format(name="reasonless")},
            allowed="tests/unit/test_d.py::test_reasonless\n"),
        "all_allowed": scratch_checkout(tmp_path / "all_allowed", {"test_b.py": SKIPPED.format(name="listed")},
                                        allowed="tests/unit/test_b.py::test_listed -- a reason\n"),
    }
    with ThreadPoolExecutor(len(checkouts) + 1) as pool:
        runs = dict((name, pool.submit(run_layers, root)) for name, root in checkouts.items())
        runs["no_layer"] = pool.submit(run_layers, checkouts["allowed"], layers=" ")
        done = dict((name, future.result()) for name, future in runs.items())

    allowed = done["allowed"]
    assert allowed.returncode == 0, allowed.stdout + allowed.stderr
    assert "layers: 1 passed, 0 failed" in allowed.stdout

    unlisted = done["unlisted"]
    out = unlisted.stdout + unlisted.stderr
    assert unlisted.returncode != 0 and "layers: 0 passed, 1 failed" in unlisted.stdout, out
    assert "tests/unit/test_b.py::test_quiet skipped (quiet is not ready): not in" in out
    assert "tests/unit/test_c.py::test_known_bug xfailed (known bug): not in" in out
    assert "'tests/unit/test_d.py::test_reasonless' names no reason" in out

    all_allowed = done["all_allowed"]  # allowed, but then nothing ran at all
    assert all_allowed.returncode != 0 and "stackops outcomes: no test ran" in all_allowed.stdout, all_allowed.stdout

    no_layer = done["no_layer"]
    assert no_layer.returncode != 0 and "no test layer to run" in no_layer.stderr, no_layer.stdout + no_layer.stderr
    assert "=== layer" not in no_layer.stdout
