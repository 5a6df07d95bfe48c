#!/usr/bin/env bash
# A throw-away PostgreSQL server for the tests, on 127.0.0.1 only.
#
#   bash scripts/pg-local.sh start    start (or reuse) it; prints ONLY the SQLAlchemy URL on stdout
#   bash scripts/pg-local.sh url      print the URL of the running server (fails if it is stopped)
#   bash scripts/pg-local.sh status   exit 0 when running
#   bash scripts/pg-local.sh stop     stop it (data kept: the next start reuses it)
#   bash scripts/pg-local.sh destroy  stop it and delete its data
#
# The URL is postgresql+asyncpg://monday_notify:<password>@127.0.0.1:<port>/monday_notify_test.
# The role may CREATE DATABASE, so the tests give every test its own database.
#
# Where the data lives (override with MONDAY_NOTIFY_PG_DIR):
#   - a normal user:  <repo>/var/pg            (var/ is gitignored)
#   - root:           /tmp/monday-notify-pg-0-<hash of the repo path>
#     PostgreSQL refuses to run as root, so as root the server runs as the `postgres` user of
#     Debian's package (or a `monday-notify-pg` system user created on first use), and that
#     user must own the data and be able to reach it; a clone under /root is not reachable,
#     hence /tmp.
# Logs go to stderr and to <dir>/server.log. The server binaries are looked up in
# $PG_BINDIR, then /usr/lib/postgresql/<newest>/bin (Debian), then pg_config/PATH.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
ROLE="monday_notify"
DB="monday_notify_test"

log() { echo "pg-local: $*" >&2; }
die() {
  log "$*"
  exit 1
}

find_bindir() {
  if [[ -n "${PG_BINDIR:-}" ]]; then
    echo "$PG_BINDIR"
    return
  fi
  local d
  d="$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1 || true)"
  if [[ -n "$d" && -x "$d/postgres" ]]; then
    echo "$d"
    return
  fi
  if command -v pg_config >/dev/null 2>&1 && [[ -x "$(pg_config --bindir)/postgres" ]]; then
    pg_config --bindir
    return
  fi
  if command -v postgres >/dev/null 2>&1; then
    dirname "$(command -v postgres)"
    return
  fi
  die "no PostgreSQL server found: run 'bash scripts/system-deps.sh' (Debian package 'postgresql') or set PG_BINDIR"
}

BIN="$(find_bindir)"
[[ -x "$BIN/initdb" && -x "$BIN/pg_ctl" && -x "$BIN/postgres" ]] || die "incomplete PostgreSQL in $BIN"

# Who runs the server, and where its data lives.
if [[ $(id -u) -eq 0 ]]; then
  if id -u postgres >/dev/null 2>&1; then
    RUN_USER="postgres"
  else
    RUN_USER="monday-notify-pg"
    if ! id -u "$RUN_USER" >/dev/null 2>&1; then
      log "creating system user $RUN_USER (PostgreSQL refuses to run as root)"
      useradd --system --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin "$RUN_USER"
    fi
  fi
  hash="$(printf '%s' "$REPO" | sha256sum | cut -c1-8)"
  BASE="${MONDAY_NOTIFY_PG_DIR:-/tmp/monday-notify-pg-0-$hash}"
  as_run_user() { runuser -u "$RUN_USER" -- "$@"; }
else
  RUN_USER="$(id -un)"
  BASE="${MONDAY_NOTIFY_PG_DIR:-$REPO/var/pg}"
  as_run_user() { "$@"; }
fi

DATA="$BASE/data"
SOCK="$BASE/sock"
STATE="$BASE/state.env"
LOGFILE="$BASE/server.log"

pg_ctl() { as_run_user "$BIN/pg_ctl" -D "$DATA" "$@"; }
psql_admin() {
  # Over the private unix socket (only the run user can reach its directory), as superuser.
  as_run_user "$BIN/psql" -X -q -v ON_ERROR_STOP=1 -h "$SOCK" -p "$PORT" -U postgres -d postgres "$@"
}

is_running() { [[ -f "$DATA/PG_VERSION" ]] && pg_ctl status >/dev/null 2>&1; }

# No python needed: a port counts as free when nothing accepts a connection on it; a race with
# another process is caught by the start retry below.
port_is_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

free_port() {
  local p i
  for i in $(seq 1 50); do
    p=$((20000 + RANDOM % 40000))
    if port_is_free "$p"; then
      echo "$p"
      return
    fi
  done
  die "no free port found on 127.0.0.1"
}

load_state() {
  PORT=""
  PASSWORD=""
  if [[ -f "$STATE" ]]; then
    # shellcheck disable=SC1090
    source "$STATE"
  fi
}

save_state() {
  (
    umask 077
    printf 'PORT=%s\nPASSWORD=%s\n' "$PORT" "$PASSWORD" >"$STATE.tmp"
  )
  mv "$STATE.tmp" "$STATE"
}

url() { echo "postgresql+asyncpg://$ROLE:$PASSWORD@127.0.0.1:$PORT/$DB"; }

prepare_dirs() {
  mkdir -p "$BASE"
  if [[ $(id -u) -eq 0 ]]; then
    # A directory in /tmp that someone else created is not ours to trust.
    local owner
    owner="$(stat -c %U "$BASE")"
    [[ "$owner" == "root" || "$owner" == "$RUN_USER" ]] || die "$BASE is owned by $owner; remove it or set MONDAY_NOTIFY_PG_DIR"
    chown "$RUN_USER" "$BASE"
  fi
  chmod 700 "$BASE"
  as_run_user mkdir -p "$SOCK"
  as_run_user touch "$LOGFILE"
  if [[ $(id -u) -eq 0 ]]; then
    as_run_user test -x "$BASE" || die "$RUN_USER cannot reach $BASE; set MONDAY_NOTIFY_PG_DIR to a directory it can reach"
  fi
}

init_cluster() {
  log "initialising a cluster in $DATA (as $RUN_USER)"
  local pwfile="$BASE/.superuser-pw"
  (umask 077 && od -An -tx1 -N16 /dev/urandom | tr -d ' \n' >"$pwfile")
  [[ $(id -u) -eq 0 ]] && chown "$RUN_USER" "$pwfile"
  # Local (socket) connections: trust, since only the run user can enter the socket directory;
  # TCP on loopback: password (scram) only.
  as_run_user "$BIN/initdb" -D "$DATA" -U postgres --pwfile="$pwfile" \
    --auth-local=trust --auth-host=scram-sha-256 -E UTF8 --no-locale --no-sync \
    >>"$LOGFILE" 2>&1 || {
    rm -f "$pwfile"
    tail -n 20 "$LOGFILE" >&2
    die "initdb failed; see $LOGFILE"
  }
  rm -f "$pwfile"
}

start() {
  prepare_dirs
  load_state
  [[ -n "$PASSWORD" ]] || PASSWORD="$(od -An -tx1 -N16 /dev/urandom | tr -d ' \n')"
  if is_running; then
    [[ -n "$PORT" ]] || die "a server runs in $DATA but $STATE is missing; run '$0 destroy'"
    log "reusing the server on 127.0.0.1:$PORT ($DATA)"
  else
    [[ -f "$DATA/PG_VERSION" ]] || init_cluster
    local attempt
    for attempt in 1 2 3; do
      if [[ -z "$PORT" ]] || ! port_is_free "$PORT"; then PORT="$(free_port)"; fi
      save_state
      log "starting PostgreSQL on 127.0.0.1:$PORT (log: $LOGFILE)"
      # Throw-away data: durability settings are off for speed; loopback only.
      if pg_ctl -w -t 60 -l "$LOGFILE" -o "-p $PORT -c listen_addresses=127.0.0.1 \
        -c unix_socket_directories=$SOCK -c max_connections=300 -c fsync=off \
        -c synchronous_commit=off -c full_page_writes=off -c ssl=off" start >&2; then
        break
      fi
      tail -n 20 "$LOGFILE" >&2 || true
      PORT=""
      ((attempt < 3)) || die "PostgreSQL did not start; see $LOGFILE"
    done
  fi
  ensure_role_and_db
  url
}

ensure_role_and_db() {
  psql_admin -v role="$ROLE" -v pw="$PASSWORD" >&2 <<'EOF'
SELECT format('CREATE ROLE %I LOGIN CREATEDB', :'role')
  WHERE NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = :'role') \gexec
SELECT format('ALTER ROLE %I WITH LOGIN CREATEDB PASSWORD %L', :'role', :'pw') \gexec
SELECT format('GRANT pg_signal_backend TO %I', :'role') \gexec
EOF
  psql_admin -v role="$ROLE" -v db="$DB" >&2 <<'EOF'
SELECT format('CREATE DATABASE %I OWNER %I', :'db', :'role')
  WHERE NOT EXISTS (SELECT 1 FROM pg_database WHERE datname = :'db') \gexec
EOF
}

stop() {
  if is_running; then
    log "stopping the server in $DATA"
    pg_ctl -w -m fast stop >&2
  else
    log "not running ($DATA)"
  fi
}

cmd="${1:-}"
case "$cmd" in
  start) start ;;
  stop) stop ;;
  status)
    if is_running; then
      load_state
      log "running on 127.0.0.1:$PORT ($DATA)"
    else
      log "not running ($DATA)"
      exit 1
    fi
    ;;
  url)
    is_running || die "not running; use '$0 start'"
    load_state
    url
    ;;
  destroy)
    stop
    log "deleting $BASE"
    rm -rf "$BASE"
    ;;
  *)
    echo "usage: $0 start|stop|status|url|destroy" >&2
    exit 2
    ;;
esac
