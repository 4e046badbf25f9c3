#!/bin/sh
# Starts a throw-away PostgreSQL server for the tests of the PostgreSQL state store.
#
#   start_server.sh DIR   initdb into a fresh directory under $TMPDIR (or /tmp), listen on
#                         127.0.0.1 at a free port (no unix socket), and write DIR/conninfo: a
#                         libpq connection string for database mama (DIR/datadir names the data).
#   start_server.sh --stop DIR   stops that server and removes its data and DIR.
#
# The data is not kept under DIR because the server's user must reach it, and DIR (a build
# tree, say under /root) may not be reachable for anyone but its owner.
#
# MAMA_PG_HOST: the address to listen on (default 127.0.0.1; netfault.sh gives a veth address
# inside a network namespace).
#
# MAMA_PG_FSYNC=on makes the server flush its WAL to disk (default off: the tests need no
# durability; bench/run_pg.sh turns it on to measure durable commits).
#
# PostgreSQL refuses to run as root: under root the server runs as the system user mama-pg
# (created when missing), or as nobody when useradd is not available.
set -eu

PG_BIN=${PG_BIN:-}
if [ -z "$PG_BIN" ]; then
  for d in /usr/lib/postgresql/*/bin; do [ -x "$d/initdb" ] && PG_BIN=$d; done
fi
[ -n "$PG_BIN" ] || PG_BIN=$(dirname "$(readlink -f "$(command -v initdb)")")
[ -x "$PG_BIN/initdb" ] || { echo "start_server.sh: initdb not found; install postgresql or set PG_BIN" >&2; exit 1; }

as_user() { "$@"; }
if [ "$(id -u)" = 0 ]; then
  user=mama-pg
  if ! id "$user" >/dev/null 2>&1; then
    useradd --system --no-create-home --shell /usr/sbin/nologin "$user" 2>/dev/null || user=nobody
  fi
  as_user() { runuser -u "$user" -- "$@"; }
fi

# Stops the server whose data directory DIR/datadir names, and removes that data.
stop_server() {
  [ -f "$1/datadir" ] || return 0
  data=$(cat "$1/datadir")
  case "$data" in */mama-pg.*) ;; *) return 0 ;; esac  # only what this script made
  if [ -f "$data/data/postmaster.pid" ]; then
    as_user "$PG_BIN/pg_ctl" -D "$data/data" -m immediate -w stop >/dev/null 2>&1 || true
  fi
  rm -rf "$data"
}

if [ "${1:-}" = --stop ]; then
  stop_server "$2"
  rm -rf "$2"
  exit 0
fi

dir=$1
host=${MAMA_PG_HOST:-127.0.0.1}
stop_server "$dir"  # a previous run that was killed may have left a server behind
rm -rf "$dir"
mkdir -p "$dir"
base=$(mktemp -d "${TMPDIR:-/tmp}/mama-pg.XXXXXX")
echo "$base" >"$dir/datadir"
if [ "$(id -u)" = 0 ]; then chown "$user" "$base"; fi
chmod 700 "$base"

as_user "$PG_BIN/initdb" -D "$base/data" -U mama --auth=trust -E UTF8 --no-locale --no-sync >"$base/initdb.log" 2>&1 ||
  { cat "$base/initdb.log" >&2; exit 1; }
# initdb's trust entries cover loopback only: on another address, trust the hosts of its subnet
# (netfault.sh: the private /30 between its two network namespaces).
if [ "$host" != 127.0.0.1 ]; then
  echo "host all all samenet trust" | as_user tee -a "$base/data/pg_hba.conf" >/dev/null
fi

# A free port: ask the kernel for one, then retry if another process took it meanwhile.
free_port() {
  python3 -c 'import socket,sys; s=socket.socket(); s.bind((sys.argv[1],0)); print(s.getsockname()[1])' "$host" 2>/dev/null ||
    echo $((20000 + $$ % 20000))
}
for attempt in 1 2 3 4 5; do
  port=$(free_port)
  if as_user "$PG_BIN/pg_ctl" -D "$base/data" -l "$base/server.log" -w -t 60 \
       -o "-c listen_addresses=$host -p $port -c unix_socket_directories='' -c fsync=${MAMA_PG_FSYNC:-off} -c max_connections=200" start >/dev/null; then
    as_user "$PG_BIN/createdb" -h "$host" -p "$port" -U mama mama
    echo "host=$host port=$port user=mama dbname=mama" >"$dir/conninfo"
    chmod 644 "$dir/conninfo"
    cat "$dir/conninfo"
    exit 0
  fi
done
cat "$base/server.log" >&2
exit 1
