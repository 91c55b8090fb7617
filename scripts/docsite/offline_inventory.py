#!/usr/bin/env python3
"""Write a local intersphinx inventory for the references our generated pages make into the Ansible docs.

intersphinx would download objects.inv from docs.ansible.com; the docs build must work offline, so the
few labels antsibull-docs emits for other docs (common return values, configuration settings, modules
of other collections) are listed here with their public URLs. Every other reference must resolve
inside the build, or Sphinx (-W) fails.

usage: offline_inventory.py RST_DIR OUTPUT.inv
"""
import re
import sys
import zlib
from pathlib import Path

BASE = "https://docs.ansible.com/projects/ansible/latest/"
FIXED = {
    "common_return_values": ("reference_appendices/common_return_values.html", "Return Values"),
    "ansible_configuration_settings": ("reference_appendices/config.html", "Ansible Configuration Settings"),
}
REF = re.compile(r":ref:`(?:[^`<]*<)?(ansible_collections\.([a-z0-9_]+)\.([a-z0-9_]+)\.([a-z0-9_]+)_(module|filter|lookup|test|role)(?:__[^`>]*)?)>?`")


def labels(rst_dir):
    found = dict(FIXED)
    for path in Path(rst_dir).rglob("*.rst"):
        for label, namespace, collection, name, kind, in REF.findall(path.read_text()):
            if namespace == "stackops":
                continue
            page = "collections/%s/%s/%s_%s.html" % (namespace, collection, name, kind)
            anchor = "" if label.endswith("_" + kind) else "#" + label.replace(".", "-").replace("_", "-")
            found[label] = (page + anchor, "%s.%s.%s" % (namespace, collection, name))
    return found


def write_inventory(entries, output):
    header = ("# Sphinx inventory version 2\n# Project: Ansible\n# Version: latest\n"
              "# The remainder of this file is compressed using zlib.\n").encode()
    body = "".join("%s std:label -1 %s %s\n" % (label, uri, title) for label, (uri, title) in sorted(entries.items()))
    Path(output).write_bytes(header + zlib.compress(body.encode()))


if __name__ == "__main__":
    write_inventory(labels(sys.argv[1]), sys.argv[2])
