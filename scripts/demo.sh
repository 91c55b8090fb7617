#!/usr/bin/env bash
# The tour `make demo` runs on the embedded demo stack: each step is one stackops
# procedure, exactly as an operator would type it, so every step also lands in
# `stackops history` with its own report.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export PATH="${STACKOPS_VENV:-$ROOT/.venv}/bin:$PATH"
cd "$ROOT"

step() { printf '\n\033[1m==> %s\033[0m\n' "$*"; "$@"; }

step stackops startup
step stackops health
step stackops backup
step stackops backups --rpo 24h
# Into a scratch database beside the application's: the live database is not touched.
step stackops restore --target-db appdb_restore_check --replace --yes
# The application brought up on a restored copy beside the live stack, its RTO measured, then removed.
step stackops drill
step stackops status
step stackops scale api --replicas 3
step stackops service rolling_restart api
step stackops scale api --replicas 1
step stackops maintenance --level weekly
step stackops health --report
step stackops history --last 14
