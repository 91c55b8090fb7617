"""Where the collection, its playbooks, the default inventory and the run state live."""
import os
import sys
from pathlib import Path

COLLECTION_SUBPATH = Path("ansible_collections") / "stackops" / "runbooks"


class LocationError(Exception):
    """The collection or a file the CLI needs cannot be found."""


def _is_collection_root(path):
    return (path / "galaxy.yml").is_file() or (path / "MANIFEST.json").is_file()


def checkout_root():
    """The repository checkout this package runs from (editable install), or None."""
    candidate = Path(__file__).resolve().parents[2]
    if _is_collection_root(candidate) and (candidate / "playbooks").is_dir():
        return candidate
    return None


def _installed_collection_roots():
    configured = os.environ.get("ANSIBLE_COLLECTIONS_PATH") or os.environ.get("ANSIBLE_COLLECTIONS_PATHS") or ""
    bases = [Path(p).expanduser() for p in configured.split(os.pathsep) if p]
    bases += [Path("~/.ansible/collections").expanduser(), Path("/usr/share/ansible/collections")]
    # Collections installed with pip (the "ansible" package) live on sys.path.
    bases += [Path(p) for p in sys.path if p]
    for base in bases:
        yield base / COLLECTION_SUBPATH


def collection_root():
    """The stackops.runbooks collection to run: $STACKOPS_COLLECTION_DIR, the checkout, or an installed copy."""
    override = os.environ.get("STACKOPS_COLLECTION_DIR")
    if override:
        root = Path(override).expanduser().resolve()
        if not (root / "playbooks").is_dir():
            raise LocationError("STACKOPS_COLLECTION_DIR=%s has no playbooks/ directory" % override)
        return root
    root = checkout_root()
    if root:
        return root
    for candidate in _installed_collection_roots():
        if (candidate / "playbooks").is_dir():
            return candidate.resolve()
    raise LocationError("stackops.runbooks is not installed: run `ansible-galaxy collection install stackops.runbooks`"
                        " or set STACKOPS_COLLECTION_DIR to a checkout")


def playbook_path(root, playbook):
    path = root / "playbooks" / playbook
    if not path.is_file():
        raise LocationError("playbook %s is missing from %s (is this collection version complete?)" % (
            playbook, root / "playbooks"))
    return path


def default_inventory(root):
    return root / "inventories" / "demo"


def state_dir():
    """Run history and locks: $STACKOPS_STATE_DIR, else <checkout>/.state, else $XDG_STATE_HOME/stackops.

    A checkout keeps its state beside the demo stack's backups (also under .state/, git-ignored),
    so a developer's runs never mix with an operator's runs of an installed copy.
    """
    override = os.environ.get("STACKOPS_STATE_DIR")
    if override:
        return Path(override).expanduser().resolve()
    root = checkout_root()
    if root and os.access(root, os.W_OK):
        return root / ".state"
    xdg = os.environ.get("XDG_STATE_HOME") or os.path.join(os.path.expanduser("~"), ".local", "state")
    return Path(xdg) / "stackops"


def runner_envvars(root):
    """Environment for ansible-playbook: the collection's ansible.cfg and collections path, the venv first."""
    env = {
        "ANSIBLE_NOCOLOR": "1",
        "ANSIBLE_FORCE_COLOR": "0",
        # The ansible-playbook next to this interpreter (the venv's), even when the venv is not activated.
        "PATH": os.path.dirname(sys.executable) + os.pathsep + os.environ.get("PATH", ""),
    }
    config = root / "ansible.cfg"
    if config.is_file():
        env["ANSIBLE_CONFIG"] = str(config)
    collections = [str(root / "collections")] if (root / "collections").is_dir() else []
    inherited = os.environ.get("ANSIBLE_COLLECTIONS_PATH")
    collections += [inherited] if inherited else ["~/.ansible/collections", "/usr/share/ansible/collections"]
    env["ANSIBLE_COLLECTIONS_PATH"] = os.pathsep.join(collections)
    return env
