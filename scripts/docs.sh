#!/usr/bin/env bash
# `make docs`: the collection's HTML docs (modules, roles with their argument specs, filters) with
# antsibull-docs and Sphinx, into build/docs/html. Fails on any warning of either tool, offline.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${STACKOPS_VENV:-$ROOT/.venv}"
OUT="${STACKOPS_DOCS_DIR:-$ROOT/build/docs}"
export PATH="$VENV/bin:$PATH"
# The committed symlink collections/ansible_collections/stackops/runbooks makes the checkout the collection.
export ANSIBLE_COLLECTIONS_PATH="$ROOT/collections"

rm -rf "$OUT" && mkdir -p "$OUT"
chmod 700 "$OUT"
mkdir -m 700 "$OUT/rst"  # antsibull-docs refuses a destination others can write to
antsibull-docs --config-file "$ROOT/scripts/docsite/antsibull-docs.cfg" collection \
  --use-current --cleanup everything --fail-on-error --dest-dir "$OUT/rst" stackops.runbooks \
  2>&1 | tee "$OUT/antsibull-docs.log"
if grep -Ei 'warn|error' "$OUT/antsibull-docs.log"; then
  echo "antsibull-docs reported problems (above; log: $OUT/antsibull-docs.log)" >&2
  exit 1
fi
cp "$ROOT/scripts/docsite/index.rst" "$OUT/rst/index.rst"
python "$ROOT/scripts/docsite/offline_inventory.py" "$OUT/rst" "$OUT/ansible.inv"
# -W: any Sphinx warning (broken reference, bad markup in a module's docs) fails the build.
sphinx-build -b html -W --keep-going -q -c "$ROOT/scripts/docsite" "$OUT/rst" "$OUT/html" 2>&1 | tee "$OUT/sphinx.log"
echo "docs: $OUT/html/index.html"
