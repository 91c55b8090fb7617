"""Every role has a README (Galaxy refuses a collection without) whose generated parts match its argument spec."""
import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
spec = importlib.util.spec_from_file_location("role_readmes", ROOT / "scripts" / "role_readmes.py")
role_readmes = importlib.util.module_from_spec(spec)
spec.loader.exec_module(role_readmes)


def test_every_role_has_a_current_readme():
    roles = role_readmes.role_dirs()
    assert {path.name for path in roles} >= {"backup", "health", "restore", "startup"}
    stale = [str(role / "README.md") for role in roles
             if role_readmes.expected_readme(role) != (role / "README.md").read_text()]
    assert not stale, "stale role READMEs (run python scripts/role_readmes.py): %s" % stale


def test_every_readme_has_the_hand_written_sections():
    for role in role_readmes.role_dirs():
        text = (role / "README.md").read_text()
        for heading in ("## Example", "## Failure modes", "## Variables"):
            assert heading in text, "%s/README.md lacks %s" % (role.name, heading)
        assert "stackops.runbooks.%s" % role.name in text


def test_every_spec_option_is_in_the_variables_table():
    for role in role_readmes.role_dirs():
        entry_points, _ = role_readmes.load_role(role)
        text = (role / "README.md").read_text()
        for entry in entry_points.values():
            for option in entry.get("options") or {}:
                assert "| `%s` |" % option in text, "%s/README.md misses %s" % (role.name, option)


def test_the_table_shows_the_default_the_role_applies(tmp_path):
    role = tmp_path / "roles" / "demo"
    (role / "meta").mkdir(parents=True)
    (role / "defaults").mkdir()
    (role / "meta" / "argument_specs.yml").write_text(
        "argument_specs:\n  main:\n    short_description: Do C(it)\n    options:\n"
        "      a: {type: int, default: 1, description: From M(stackops.runbooks.pg_backup).}\n"
        "      b: {type: str, required: true, description: x|y}\n"
        "      c: {type: list, elements: str, description: Only in defaults.}\n")
    (role / "defaults" / "main.yml").write_text("a: 2\nc: [one]\n")
    entry_points, defaults = role_readmes.load_role(role)
    table = role_readmes.render_variables(entry_points, defaults)
    assert "| `a` | int | `2` | From `stackops.runbooks.pg_backup`. |" in table
    assert "| `b` | str | *required* | x\\|y |" in table
    assert '| `c` | list of str | `["one"]` |' in table
    assert role_readmes.render_purpose("demo", entry_points).splitlines()[2] == "Do `it`."
