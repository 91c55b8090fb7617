#!/bin/bash
# A small implementation of the official postgres image's entrypoint contract:
#   POSTGRES_USER (default postgres) is the superuser, POSTGRES_DB (default: the user) its database,
#   POSTGRES_PASSWORD or POSTGRES_PASSWORD_FILE its password, POSTGRES_INITDB_ARGS extra initdb
#   arguments, and /docker-entrypoint-initdb.d/*.sh|*.sql|*.sql.gz run once on the first start.
# The password reaches initdb through a file and psql through the environment, never argv.
set -Eeuo pipefail

file_env() {
  local var="$1" file_var="${1}_FILE" default="${2:-}"
  if [ -n "${!var:-}" ] && [ -n "${!file_var:-}" ]; then
    echo "error: both $var and $file_var are set (but are exclusive)" >&2; exit 1
  fi
  local value="$default"
  if [ -n "${!var:-}" ]; then value="${!var}"; elif [ -n "${!file_var:-}" ]; then value="$(< "${!file_var}")"; fi
  export "$var"="$value"
  unset "$file_var"
}

as_postgres() { setpriv --reuid=postgres --regid=postgres --init-groups "$@"; }

if [ "${1:-postgres}" != postgres ]; then exec "$@"; fi
shift || true

file_env POSTGRES_PASSWORD
file_env POSTGRES_USER postgres
file_env POSTGRES_DB "$POSTGRES_USER"
file_env POSTGRES_INITDB_ARGS
if [ -z "$POSTGRES_PASSWORD" ]; then
  echo "error: the database is uninitialized and POSTGRES_PASSWORD (or POSTGRES_PASSWORD_FILE) is not set" >&2
  exit 1
fi

mkdir -p "$PGDATA" /var/run/postgresql
chown postgres:postgres "$PGDATA" /var/run/postgresql
chmod 700 "$PGDATA"

if [ ! -s "$PGDATA/PG_VERSION" ]; then
  pwfile="$(mktemp)"; printf '%s\n' "$POSTGRES_PASSWORD" > "$pwfile"; chown postgres "$pwfile"
  # shellcheck disable=SC2086  # POSTGRES_INITDB_ARGS is a list of arguments, as in the official image
  as_postgres initdb -D "$PGDATA" --username="$POSTGRES_USER" --pwfile="$pwfile" \
    --auth-local=trust --auth-host=scram-sha-256 $POSTGRES_INITDB_ARGS >/dev/null
  rm -f "$pwfile"
  printf "\nlisten_addresses = '*'\n" >> "$PGDATA/postgresql.conf"
  echo "host all all all scram-sha-256" >> "$PGDATA/pg_hba.conf"
  as_postgres pg_ctl -D "$PGDATA" -o "-c listen_addresses=''" -w start >/dev/null
  export PGUSER="$POSTGRES_USER" PGPASSWORD="$POSTGRES_PASSWORD" PGHOST=/var/run/postgresql
  if [ "$POSTGRES_DB" != postgres ]; then
    as_postgres env PGUSER="$PGUSER" PGHOST="$PGHOST" psql -v ON_ERROR_STOP=1 -q -d postgres \
      -v db="$POSTGRES_DB" <<'SQL'
CREATE DATABASE :"db";
SQL
  fi
  for f in /docker-entrypoint-initdb.d/*; do
    # shellcheck disable=SC1090  # init scripts are the image user's, found at run time
    case "$f" in
      *.sh) echo "running $f"; if [ -x "$f" ]; then "$f"; else . "$f"; fi ;;
      *.sql) echo "running $f"; as_postgres env PGUSER="$PGUSER" PGHOST="$PGHOST" psql -v ON_ERROR_STOP=1 -q -d "$POSTGRES_DB" -f "$f" ;;
      *.sql.gz) echo "running $f"; gunzip -c "$f" | as_postgres env PGUSER="$PGUSER" PGHOST="$PGHOST" psql -v ON_ERROR_STOP=1 -q -d "$POSTGRES_DB" ;;
      *) [ -e "$f" ] && echo "ignoring $f" ;;
    esac
  done
  unset PGPASSWORD
  as_postgres pg_ctl -D "$PGDATA" -m fast -w stop >/dev/null
fi
unset POSTGRES_PASSWORD
exec setpriv --reuid=postgres --regid=postgres --init-groups postgres -D "$PGDATA" "$@"
