#!/bin/sh
# Initialise the cluster on first start, then run postgres in the foreground as PID 1.
set -eu
: "${POSTGRES_DB:=appdb}" "${POSTGRES_USER:=app}"
password="$(cat "${POSTGRES_PASSWORD_FILE:?POSTGRES_PASSWORD_FILE is required}")"
as_postgres() { setpriv --reuid=postgres --regid=postgres --init-groups "$@"; }

mkdir -p "$PGDATA" /var/run/postgresql
chown postgres:postgres "$PGDATA" /var/run/postgresql
chmod 700 "$PGDATA"

if [ ! -s "$PGDATA/PG_VERSION" ]; then
  pwfile="$(mktemp)"; printf '%s\n' "$password" > "$pwfile"; chown postgres "$pwfile"
  as_postgres initdb -D "$PGDATA" -U postgres --auth-local=peer --auth-host=scram-sha-256 \
    --pwfile="$pwfile" -E UTF8 --locale=C.UTF-8 >/dev/null
  rm -f "$pwfile"
  cat >> "$PGDATA/postgresql.conf" <<CONF
listen_addresses = '*'
max_connections = 100
shared_buffers = 128MB
CONF
  # Clients on the host arrive from the bridge gateway, not from 127.0.0.1.
  echo "host all all 0.0.0.0/0 scram-sha-256" >> "$PGDATA/pg_hba.conf"
  as_postgres pg_ctl -D "$PGDATA" -o "-c listen_addresses=''" -w start >/dev/null
  # The password reaches psql through its environment (readable by root and postgres only), never through argv,
  # which every user of the container can read in /proc.
  STACKOPS_INIT_PASSWORD="$password"; export STACKOPS_INIT_PASSWORD
  as_postgres psql -v ON_ERROR_STOP=1 -q -U postgres -d postgres \
    -v user="$POSTGRES_USER" -v db="$POSTGRES_DB" <<'SQL'
\getenv pw STACKOPS_INIT_PASSWORD
CREATE ROLE :"user" LOGIN SUPERUSER PASSWORD :'pw';
CREATE DATABASE :"db" OWNER :"user";
SQL
  unset STACKOPS_INIT_PASSWORD
  as_postgres pg_ctl -D "$PGDATA" -m fast -w stop >/dev/null
fi
exec setpriv --reuid=postgres --regid=postgres --init-groups postgres -D "$PGDATA"
