"""galaxy.yml and collections/requirements.yml declare exactly the collections the shipped content uses."""
import re
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
OWN = {"stackops.runbooks", "ansible.builtin", "ansible.legacy", "ansible.module_utils"}
FQCN = re.compile(r"\b([a-z_]+)\.([a-z0-9_]+)\.([a-z0-9_]+)\b")
# Namespaces that only hold collections; anything else with three dotted parts is not a FQCN.
NAMESPACES = {"community", "kubernetes", "ansible", "containers", "amazon", "google", "azure", "cisco"}


def used_collections():
    used = set()
    for folder in ("roles", "playbooks", "plugins", "meta"):
        for path in (ROOT / folder).rglob("*"):
            if path.is_file() and path.suffix in (".yml", ".yaml", ".py", ".j2"):
                for namespace, name, _ in FQCN.findall(path.read_text(errors="replace")):
                    if namespace in NAMESPACES:
                        used.add("%s.%s" % (namespace, name))
    return used - OWN


def test_galaxy_dependencies_are_what_the_content_uses():
    declared = set(yaml.safe_load((ROOT / "galaxy.yml").read_text()).get("dependencies") or {})
    used = used_collections()
    assert "community.docker" in used, "the scan found nothing: %s" % sorted(used)
    assert declared == used, "galaxy.yml declares %s, the content uses %s" % (sorted(declared), sorted(used))


def test_awx_requirements_match_galaxy_yml():
    galaxy = yaml.safe_load((ROOT / "galaxy.yml").read_text())["dependencies"]
    awx = {item["name"]: item.get("version") for item in
           yaml.safe_load((ROOT / "collections" / "requirements.yml").read_text())["collections"]}
    assert awx == galaxy
