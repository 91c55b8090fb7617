#!/usr/bin/env bash
# `make bench`: every benchmark in one go, each printing its table and writing
# benchmarks/results/<name>.json and .png; then the summary in README.md and docs/performance.md.
#
#   BENCH_ONLY=backup,startup     run a subset (overhead, startup, health, backup, offsite)
#   BENCH_DB_MB=1024              size of the generated database (backup/restore)
#   BENCH_REPEAT=3                rounds per contender (median reported)
#   BENCH_SLOW_SECONDS=60         a contender slower than this in round 1 is not repeated
# More settings in benchmarks/README.md. Never part of `make test`.
set -uo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/.." && pwd)"
VENV="${STACKOPS_VENV:-$ROOT/.venv}"
PY="$VENV/bin/python"
ONLY="${BENCH_ONLY:-overhead,startup,health,backup}"

log() { printf '[bench %(%H:%M:%S)T] %s\n' -1 "$*" >&2; }

[ -x "$PY" ] || { log "no venv at $VENV: run scripts/bootstrap.sh (make bootstrap) first"; exit 1; }
if ! "$PY" -c 'import matplotlib' 2>/dev/null; then
  log "installing the benchmark requirements (benchmarks/requirements.txt) into $VENV"
  "$VENV/bin/pip" install -q --disable-pip-version-check -r "$HERE/requirements.txt" \
    || log "could not install matplotlib: the tables and JSON are still written, the PNG charts are not"
fi

cd "$ROOT" || exit 2
export ANSIBLE_CONFIG="$ROOT/ansible.cfg" PATH="$VENV/bin:$PATH"
started=$SECONDS
failed=()
for name in overhead startup health backup offsite; do
  case ",$ONLY," in *",$name,"*) ;; *) continue ;; esac
  log "benchmark $name"
  t0=$SECONDS
  "$PY" "$HERE/bench_$name.py"
  rc=$?
  if [ "$rc" -ne 0 ]; then
    failed+=("$name")
    log "benchmark $name FAILED (exit $rc); going on with the others"
  fi
  log "benchmark $name took $((SECONDS - t0)) s"
done
"$PY" "$HERE/summarize.py" || failed+=("summary")
log "all benchmarks took $((SECONDS - started)) s"
if [ "${#failed[@]}" -gt 0 ]; then
  log "failed: ${failed[*]}"
  exit 1
fi
