#!/usr/bin/env bash
# Runs ansible-test sanity on a copy of the collection placed where ansible-test
# requires it (ansible_collections/stackops/runbooks), using the project's venv.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${STACKOPS_VENV:-$ROOT/.venv}"
WORK="${STACKOPS_SANITY_DIR:-$ROOT/build/sanity}"
DEST="$WORK/ansible_collections/stackops/runbooks"

rm -rf "$WORK" && mkdir -p "$DEST"
# Sanity-check exactly what ships: the tarball `ansible-galaxy collection build` makes
# (galaxy.yml's build_ignore leaves out the CLI package, tests and dev tooling).
"$VENV/bin/ansible-galaxy" collection build --force --output-path "$WORK" "$ROOT" >/dev/null
tar -C "$DEST" -xzf "$WORK"/stackops-runbooks-*.tar.gz

# Galaxy / Automation Hub accept the tarball: galaxy-importer (offline, see scripts/galaxy-importer.cfg)
# fails on a missing role README, bad docs or metadata; its warnings count as failures too.
importer_log="$WORK/galaxy-importer.log"
# It writes importer_result.json into its working directory: run it in the sanity dir, not the checkout.
if ! (cd "$WORK" && PATH="$VENV/bin:$PATH" GALAXY_IMPORTER_CONFIG="$ROOT/scripts/galaxy-importer.cfg" \
      GALAXY_IMPORTER_ANSIBLE_LOCAL_TMP="$WORK/ansible-tmp" \
      "$VENV/bin/python" -m galaxy_importer.main "$WORK"/stackops-runbooks-*.tar.gz) >"$importer_log" 2>&1 \
    || grep -E '^(WARNING|ERROR)' "$importer_log"; then
  echo "galaxy-importer rejected the collection tarball (full log: $importer_log):" >&2
  grep -E '^(WARNING|ERROR)|Error|Traceback' "$importer_log" >&2 || tail -20 "$importer_log" >&2
  exit 1
fi
echo "galaxy-importer: $(tail -1 "$importer_log")"
# The docs site builds without a warning (the same build as `make docs`, into the sanity dir).
STACKOPS_DOCS_DIR="$WORK/docs" bash "$ROOT/scripts/docs.sh"
cd "$DEST"
git init -q && git add -A  # ansible-test finds the collection's files through git
export PATH="$VENV/bin:$PATH"

pip_version="$("$VENV/bin/python" -c 'import re, ansible_test, pathlib
src = (pathlib.Path(ansible_test.__file__).parent / "_internal/python_requirements.py").read_text()
print(re.search(r"pip=.([0-9.]+).", src).group(1))')"
cache="$HOME/.ansible/test/cache/get_pip_${pip_version//./_}.py"
mkdir -p "$(dirname "$cache")" && cp "$ROOT/scripts/ansible-test/get_pip_offline.py" "$cache"
# ansible-test reuses its venvs by path and never checks them: one left half-made by an interrupted run (no
# pyvenv.cfg) fails its test with "No module named ..." on every later run. Remove those so they are made again.
for venv in "$HOME"/.ansible/test/venv/*/*/*/; do
  [ -d "$venv" ] && [ ! -f "$venv/pyvenv.cfg" ] && rm -rf "$venv"
done
# pslint needs PowerShell, and the collection ships no PowerShell code.
exec ansible-test sanity --python 3.11 --color no --skip-test pslint "$@"
