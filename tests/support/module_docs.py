"""The options each module of the collection documents, doc fragments included (ansible-test sanity holds the
documentation to the argument spec), read without running anything."""
import functools
import importlib
import re

import yaml

from .runner import REPO

FRAGMENTS = "ansible_collections.stackops.runbooks.plugins.doc_fragments."


def documentation(path):
    match = re.search(r"^DOCUMENTATION\s*=\s*r?('''|\"\"\")(.*?)\1", path.read_text(), re.S | re.M)
    assert match, "%s has no DOCUMENTATION" % path.name
    return yaml.safe_load(match.group(2))


def redirected(name):
    """The module ``name`` runs as: itself, or where meta/runtime.yml's plugin_routing redirects a deprecated name."""
    routing = yaml.safe_load((REPO / "meta" / "runtime.yml").read_text()).get("plugin_routing") or {}
    redirect = ((routing.get("modules") or {}).get(name) or {}).get("redirect")
    return redirect.split(".")[-1] if redirect else name


@functools.lru_cache(maxsize=None)
def module_options(name):
    """{option: doc} of module ``name`` (pg_backup, ...; a deprecated name has the options of its new module)."""
    doc = documentation(REPO / "plugins" / "modules" / ("%s.py" % redirected(name)))
    options = dict(doc.get("options") or {})
    for fragment in doc.get("extends_documentation_fragment") or []:
        parts = fragment.split(".")
        if parts[:2] != ["stackops", "runbooks"]:
            continue
        source = importlib.import_module(FRAGMENTS + parts[2])
        text = getattr(source.ModuleDocFragment, parts[3].upper() if len(parts) > 3 else "DOCUMENTATION")
        options.update(yaml.safe_load(text).get("options") or {})
    return options
