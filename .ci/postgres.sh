#!/usr/bin/env bash
# Install (when missing) and start a throwaway PostgreSQL server for the store tests,
# then publish its URL as KERNELSMITH_TEST_PG_URL.
#
# Called by .ci/run on a fresh Debian 12 machine (root):
#     eval "$(bash .ci/postgres.sh)"        # or: bash .ci/postgres.sh && . .ci/pg_url
# stdout is exactly one line, `export KERNELSMITH_TEST_PG_URL=postgresql+psycopg://...`;
# the same line is written to .ci/pg_url; progress goes to stderr.
#
# Idempotent and fast: a second run finds the server up and only prints the URL again.
# The cluster lives in $KS_PG_DIR (own data dir, socket and log, on a free port on
# 127.0.0.1), never in the system's clusters; it runs without fsync (test data only).
#
#     bash .ci/postgres.sh --stop           # stop it (the data dir stays for a restart)
#
# Environment:
#   KS_PG_DIR    where the cluster lives (/tmp/ks-pg)
#   KS_PG_PORT   the port to use (default: the last one used, else a free one)
set -euo pipefail

cd "$(dirname "$0")/.."
DIR=${KS_PG_DIR:-/tmp/ks-pg}
DATA=$DIR/data
LOG=$DIR/postgres.log
URL_FILE=.ci/pg_url
ROLE=kernelsmith
PASS=kernelsmith
DB=kernelsmith_test

say() { echo "[.ci/postgres.sh] $*" >&2; }
die() {
    echo "[.ci/postgres.sh] ERROR: $*" >&2
    if [ -f "$LOG" ]; then
        echo "[.ci/postgres.sh] last lines of $LOG:" >&2
        tail -n 30 "$LOG" >&2 || true
    fi
    exit 1
}

pg_bin() {  # the newest installed server's bin directory
    local d
    d=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1 || true)
    [ -n "$d" ] && [ -x "$d/initdb" ] && echo "$d"
}

# 1. Packages. Debian's postgresql package creates and starts a "main" cluster unless
#    told not to; we never use it, so we tell it not to.
BIN=$(pg_bin || true)
if [ -z "$BIN" ]; then
    [ "$(id -u)" = 0 ] || die "PostgreSQL is not installed and installing it needs root"
    say "installing postgresql"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq || die "apt-get update failed"
    apt-get install -y -qq --no-install-recommends postgresql-common >/dev/null \
        || die "apt-get install postgresql-common failed"
    sed -ri 's/^#?\s*(create_main_cluster)\s*=.*$/\1 = false/' /etc/postgresql-common/createcluster.conf || true
    apt-get install -y -qq --no-install-recommends postgresql >/dev/null || die "apt-get install postgresql failed"
    BIN=$(pg_bin || true)
    [ -n "$BIN" ] || die "no /usr/lib/postgresql/*/bin/initdb after installing postgresql"
fi

# The server refuses to run as root: as root, run it as the postgres user.
if [ "$(id -u)" = 0 ]; then
    id postgres >/dev/null 2>&1 || useradd --system --home-dir "$DIR" --shell /bin/sh postgres
    as_pg() { runuser -u postgres -- "$@"; }
else
    as_pg() { "$@"; }
fi

if [ "${1:-}" = "--stop" ]; then
    if [ -f "$DATA/PG_VERSION" ] && as_pg "$BIN/pg_ctl" -D "$DATA" status >/dev/null 2>&1; then
        as_pg "$BIN/pg_ctl" -D "$DATA" -m fast -w stop >&2 || die "pg_ctl stop failed"
    fi
    rm -f "$URL_FILE"
    exit 0
fi

free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}
port_busy() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# 2. The cluster: made once, then (re)started when it is not running.
mkdir -p "$DIR"
[ "$(id -u)" = 0 ] && chown postgres: "$DIR"
chmod 700 "$DIR"
if [ ! -f "$DATA/PG_VERSION" ]; then
    say "initdb $DATA"
    rm -rf "$DATA"
    printf '%s\n' "$PASS" > "$DIR/pwfile"
    [ "$(id -u)" = 0 ] && chown postgres: "$DIR/pwfile"
    as_pg "$BIN/initdb" -D "$DATA" -U postgres --pwfile="$DIR/pwfile" --auth-local=trust \
        --auth-host=scram-sha-256 --encoding=UTF8 --locale=C.UTF-8 --no-sync >"$DIR/initdb.log" 2>&1 \
        || { cat "$DIR/initdb.log" >&2; die "initdb failed"; }
    rm -f "$DIR/pwfile"
fi

if as_pg "$BIN/pg_ctl" -D "$DATA" status >/dev/null 2>&1; then
    PORT=$(sed -n 4p "$DATA/postmaster.pid")  # the running server's own record of its port
    say "server already running on port $PORT"
else
    PORT=${KS_PG_PORT:-$(cat "$DIR/port" 2>/dev/null || true)}
    if [ -z "$PORT" ] || port_busy "$PORT"; then
        [ -z "${KS_PG_PORT:-}" ] || die "port $KS_PG_PORT (KS_PG_PORT) is in use"
        PORT=$(free_port)
    fi
    echo "$PORT" > "$DIR/port"
    say "starting PostgreSQL ($BIN) on 127.0.0.1:$PORT (log: $LOG)"
    as_pg "$BIN/pg_ctl" -D "$DATA" -l "$LOG" -w -t 60 start -o "-p $PORT -k $DIR \
        -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off -c full_page_writes=off \
        -c max_connections=200" >&2 || die "pg_ctl start failed"
fi

# 3. Role and database (as the superuser, over the cluster's own socket).
psql_su() { as_pg "$BIN/psql" -h "$DIR" -p "$PORT" -U postgres -d postgres -v ON_ERROR_STOP=1 -qAt "$@"; }
if [ "$(psql_su -c "SELECT 1 FROM pg_roles WHERE rolname = '$ROLE'")" != 1 ]; then
    psql_su -c "CREATE ROLE $ROLE LOGIN PASSWORD '$PASS'" || die "CREATE ROLE failed"
fi
if [ "$(psql_su -c "SELECT 1 FROM pg_database WHERE datname = '$DB'")" != 1 ]; then
    psql_su -c "CREATE DATABASE $DB OWNER $ROLE" || die "CREATE DATABASE failed"
fi

URL="postgresql+psycopg://$ROLE:$PASS@127.0.0.1:$PORT/$DB"
PGPASSWORD=$PASS "$BIN/psql" -h 127.0.0.1 -p "$PORT" -U "$ROLE" -d "$DB" -qAt -c "SELECT 1" >/dev/null \
    || die "cannot log in as $ROLE over TCP"
echo "export KERNELSMITH_TEST_PG_URL=$URL" > "$URL_FILE"
say "ready: $URL (also in $URL_FILE)"
echo "export KERNELSMITH_TEST_PG_URL=$URL"
