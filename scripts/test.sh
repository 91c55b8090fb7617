#!/usr/bin/env bash
# Runs every test layer against real parts and prints the time each took.
# Every layer runs even when an earlier one failed, so one CI run shows all breakage;
# the exit code is non-zero if any layer failed, or none ran. A layer never skips silently.
set -uo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${STACKOPS_VENV:-$ROOT/.venv}"
export PATH="$VENV/bin:$PATH"
export ANSIBLE_CONFIG="$ROOT/ansible.cfg"
cd "$ROOT" || exit 2

read -r -a LAYERS <<< "${STACKOPS_TEST_LAYERS:-unit sanity lint integration molecule}"
# Green means something ran: no layer is a failure, and so is a pytest layer that ran no test or skipped one
# not listed in tests/allowed-skips.txt (tests/support/outcomes.py).
[ "${#LAYERS[@]}" -gt 0 ] || { echo "no test layer to run: STACKOPS_TEST_LAYERS=\"${STACKOPS_TEST_LAYERS}\" names none" >&2; exit 2; }

layer_unit()        { pytest -q -p no:cacheprovider tests/unit; }
layer_sanity()      { bash scripts/sanity.sh; }
layer_lint()        { ansible-lint --nocolor -q; }
# Test files run side by side (each xdist worker has its own copy of the demo stack, see tests/conftest.py):
# most of their time is spent waiting on containers and health gates, not on the two cores.
layer_integration() {
  pytest -q -p no:cacheprovider --timeout 900 -n "${STACKOPS_TEST_WORKERS:-3}" --dist loadfile tests/integration tests/cli
}
layer_molecule() {
  local scenarios=() dir
  for dir in molecule/*/; do [ -f "$dir/molecule.yml" ] && scenarios+=("$(basename "$dir")"); done
  [ "${#scenarios[@]}" -gt 0 ] || { echo "no molecule scenario found under molecule/" >&2; return 1; }
  local scenario
  for scenario in "${scenarios[@]}"; do
    echo "--- molecule test -s $scenario"
    molecule test -s "$scenario" || return 1
  done
}

declare -A RESULT DURATION
passed=0; failed=0
for layer in "${LAYERS[@]}"; do
  declare -F "layer_$layer" >/dev/null || { echo "unknown test layer: $layer" >&2; exit 2; }
  echo "=== layer: $layer"
  start=$SECONDS
  if "layer_$layer"; then RESULT[$layer]=passed; passed=$((passed + 1)); else RESULT[$layer]=FAILED; failed=$((failed + 1)); fi
  DURATION[$layer]=$((SECONDS - start))
  echo "=== layer: $layer ${RESULT[$layer]} in ${DURATION[$layer]} s"
done

echo
printf '%-12s %-8s %s\n' layer result seconds
for layer in "${LAYERS[@]}"; do printf '%-12s %-8s %s\n' "$layer" "${RESULT[$layer]}" "${DURATION[$layer]}"; done
echo "layers: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
