#!/usr/bin/env bash
# t/demo.sh: pgdog in front of two throwaway PostgreSQL 15 instances, in one command.
#
#   t/demo.sh [--install] [STATEDIR]   start the demo (default STATEDIR /var/tmp/pgdog-demo)
#   t/demo.sh stop [STATEDIR]          stop pgdog and both PostgreSQL instances
#
# Start creates two PostgreSQL clusters in STATEDIR (127.0.0.1:15432 with database "prod" for
# user alice, 127.0.0.1:15433 with database "analytics" for user analyst; both with password
# hunter2, SCRAM), writes
# STATEDIR/pgdog.ini and STATEDIR/users.ini, starts pgdog with --daemon on 127.0.0.1:6432,
# runs a query through it and prints how to connect. Running it again stops the previous demo
# and starts a fresh one. Nothing listens on anything but 127.0.0.1 (and Unix sockets in STATEDIR).
#
# --install (as root, Debian 12): apt-get install the build and run dependencies, then build
#   pgdog out of tree in ./build (autogen.sh, configure, make) before starting.
#
# Environment:
#   PGDOG_BIN   the pgdog binary, or a build directory holding it
#               (default: ./pgdog, else ./build/pgdog, relative to the repository)
#   PG_BINDIR   PostgreSQL server binaries (default /usr/lib/postgresql/15/bin)
#   PG_PORT1 PG_PORT2 PGDOG_PORT   ports (default 15432 15433 6432)
set -euo pipefail

SRCDIR=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
DEFAULT_STATEDIR=/var/tmp/pgdog-demo
PG_PORT1=${PG_PORT1:-15432}
PG_PORT2=${PG_PORT2:-15433}
PGDOG_PORT=${PGDOG_PORT:-6432}
APP_USER=alice    # database prod, first instance
APP_USER2=analyst # database analytics, second instance
APP_PASSWORD=hunter2
ADMIN_PASSWORD=pgdog

# Debian 12 packages: building pgdog, and running the demo.
DEMO_PACKAGES="autoconf automake libtool pkg-config make gcc libevent-dev libssl-dev libsodium-dev
  libinih-dev libpg-query-dev libprotobuf-c-dev check libpq-dev postgresql postgresql-client procps
  iproute2 prometheus"

say() { printf 'demo: %s\n' "$*" >&2; }
die() { say "error: $*"; exit 1; }

usage() {
	sed -n '2,20p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
	exit "${1:-0}"
}

# --- arguments --------------------------------------------------------------------------------
action=start
install=0
STATEDIR=
while [ $# -gt 0 ]; do
	case $1 in
	stop) action=stop ;;
	start) action=start ;;
	--install) install=1 ;;
	-h | --help) usage 0 ;;
	-*) say "unknown option $1"; usage 2 ;;
	*) [ -z "$STATEDIR" ] || usage 2; STATEDIR=$1 ;;
	esac
	shift
done
STATEDIR=${STATEDIR:-$DEFAULT_STATEDIR}
case $STATEDIR in /*) ;; *) STATEDIR=$PWD/$STATEDIR ;; esac
STATEDIR=${STATEDIR%/}
if [ -z "$STATEDIR" ]; then
	die "refusing to use / as the state directory"
fi

# --- helpers ----------------------------------------------------------------------------------
find_pg_bindir() {
	local d
	if [ -n "${PG_BINDIR:-}" ]; then
		echo "$PG_BINDIR"
		return
	fi
	if [ -x /usr/lib/postgresql/15/bin/initdb ]; then
		echo /usr/lib/postgresql/15/bin
		return
	fi
	# else the newest installed version
	for d in $(printf '%s\n' /usr/lib/postgresql/*/bin | sort -V -r); do
		[ -x "$d/initdb" ] && { echo "$d"; return; }
	done
	echo /usr/lib/postgresql/15/bin
}
PGBIN=$(find_pg_bindir)

# Run a PostgreSQL server program: as user postgres when we are root (initdb refuses root).
as_pg() {
	if [ "$(id -u)" = 0 ]; then
		runuser -u postgres -- "$@"
	else
		"$@"
	fi
}

port_busy() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

wait_port() { # wait_port PORT TIMEOUT_S [PID]: true once something accepts on 127.0.0.1:PORT
	local port=$1 t=$2 pid=${3:-} i
	for ((i = 0; i < t * 10; i++)); do
		port_busy "$port" && return 0
		if [ -n "$pid" ] && ! kill -0 "$pid" 2>/dev/null; then
			return 1
		fi
		sleep 0.1
	done
	return 1
}

find_pgdog() {
	local b=${PGDOG_BIN:-}
	if [ -n "$b" ]; then
		[ -d "$b" ] && b=$b/pgdog
		[ -x "$b" ] || die "PGDOG_BIN=$PGDOG_BIN: no executable pgdog there"
		echo "$b"
		return
	fi
	for b in "$SRCDIR/pgdog" "$SRCDIR/build/pgdog"; do
		[ -x "$b" ] && { echo "$b"; return; }
	done
	die "no pgdog binary: build it first (./autogen.sh && ./configure && make), set PGDOG_BIN, or run t/demo.sh --install"
}

# --- stop -------------------------------------------------------------------------------------
stop_pgdog() {
	local pidfile=$STATEDIR/pgdog.pid pid i
	[ -f "$pidfile" ] || return 0
	pid=$(tr -dc '0-9' <"$pidfile")
	if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null &&
		tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q pgdog; then
		say "stopping pgdog (pid $pid)"
		kill -TERM "$pid" 2>/dev/null || true # fast shutdown
		for ((i = 0; i < 100; i++)); do
			kill -0 "$pid" 2>/dev/null || break
			sleep 0.1
		done
		if kill -0 "$pid" 2>/dev/null; then
			say "pgdog (pid $pid) still running after 10 s: SIGKILL"
			kill -KILL "$pid" 2>/dev/null || true
		fi
	fi
	rm -f "$pidfile"
}

stop_cluster() {
	local d=$1
	[ -s "$d/PG_VERSION" ] || return 0
	if as_pg "$PGBIN/pg_ctl" -D "$d" status >/dev/null 2>&1; then
		say "stopping PostgreSQL in $d"
		as_pg "$PGBIN/pg_ctl" -D "$d" -m fast -w -t 60 stop >/dev/null
	fi
}

stop_all() {
	stop_pgdog
	stop_cluster "$STATEDIR/pg1"
	stop_cluster "$STATEDIR/pg2"
}

if [ "$action" = stop ]; then
	[ -d "$STATEDIR" ] || { say "nothing to stop in $STATEDIR"; exit 0; }
	stop_all
	say "stopped; state is kept in $STATEDIR (remove it with: rm -rf $STATEDIR)"
	exit 0
fi

# --- install and build (optional) -------------------------------------------------------------
if [ "$install" = 1 ]; then
	[ "$(id -u)" = 0 ] || die "--install needs root (apt-get)"
	say "installing Debian packages"
	export DEBIAN_FRONTEND=noninteractive
	apt-get update || say "apt-get update failed; trying with the package lists we have"
	# shellcheck disable=SC2086
	apt-get install -y --no-install-recommends $DEMO_PACKAGES
	say "building pgdog in $SRCDIR/build"
	(
		cd "$SRCDIR"
		[ -x configure ] || ./autogen.sh
		mkdir -p build
		cd build
		[ -f Makefile ] || ../configure
		make -j"$(nproc)"
	)
	PGDOG_BIN=${PGDOG_BIN:-$SRCDIR/build/pgdog}
fi

# --- start ------------------------------------------------------------------------------------
[ -x "$PGBIN/initdb" ] || die "no $PGBIN/initdb: apt-get install -y postgresql (or set PG_BINDIR)"
command -v psql >/dev/null || die "no psql: apt-get install -y postgresql-client"
if [ "$(id -u)" = 0 ]; then
	id postgres >/dev/null 2>&1 || die "no user postgres (the postgresql package creates it)"
fi
PGDOG=$(find_pgdog)

mkdir -p "$STATEDIR"
stop_all # idempotent: a previous demo in this directory goes first

for port in "$PG_PORT1" "$PG_PORT2" "$PGDOG_PORT"; do
	port_busy "$port" && die "127.0.0.1:$port is in use by another program (see: ss -ltnp 'sport = :$port'); pick other ports with PG_PORT1, PG_PORT2, PGDOG_PORT"
done

rm -rf "$STATEDIR/pg1" "$STATEDIR/pg2"
rm -f "$STATEDIR"/pgdog.ini "$STATEDIR"/users.ini "$STATEDIR"/*.log
if [ "$(id -u)" = 0 ]; then
	chown postgres:postgres "$STATEDIR"
fi
chmod 755 "$STATEDIR"

# make_cluster DIR PORT: initdb (local trust, TCP SCRAM), start, wait.
make_cluster() {
	local d=$1 port=$2 log=$STATEDIR/postgresql-$2.log
	say "creating PostgreSQL cluster $d on 127.0.0.1:$port"
	as_pg "$PGBIN/initdb" -D "$d" -U postgres -E UTF8 --locale=C --no-sync \
		--auth-local=trust --auth-host=scram-sha-256 >"$STATEDIR/initdb-$port.log" 2>&1 ||
		die "initdb failed, see $STATEDIR/initdb-$port.log"
	cat >>"$d/postgresql.conf" <<CONF
# --- t/demo.sh ---
port = $port
listen_addresses = '127.0.0.1'
unix_socket_directories = '$STATEDIR'
max_connections = 100
password_encryption = 'scram-sha-256'
fsync = off
logging_collector = off
CONF
	as_pg "$PGBIN/pg_ctl" -D "$d" -l "$log" -w -t 60 start >/dev/null ||
		die "PostgreSQL did not start, see $log"
}

# psql_local PORT DB SQL: as the superuser over the Unix socket (trust).
psql_local() {
	psql -X -q -v ON_ERROR_STOP=1 -h "$STATEDIR" -p "$1" -U postgres -d "$2" -c "$3" >/dev/null
}

make_cluster "$STATEDIR/pg1" "$PG_PORT1"
make_cluster "$STATEDIR/pg2" "$PG_PORT2"

psql_local "$PG_PORT1" postgres "CREATE ROLE $APP_USER LOGIN PASSWORD '$APP_PASSWORD'"
psql_local "$PG_PORT2" postgres "CREATE ROLE $APP_USER2 LOGIN PASSWORD '$APP_PASSWORD'"
psql_local "$PG_PORT1" postgres "CREATE DATABASE prod OWNER $APP_USER"
psql_local "$PG_PORT2" postgres "CREATE DATABASE analytics OWNER $APP_USER2"
psql_local "$PG_PORT1" prod "SET ROLE $APP_USER;
  CREATE TABLE accounts (id int PRIMARY KEY, owner text NOT NULL, balance numeric NOT NULL);
  INSERT INTO accounts SELECT g, 'owner ' || g, g * 10 FROM generate_series(1, 1000) g;"
psql_local "$PG_PORT2" analytics "SET ROLE $APP_USER2;
  CREATE TABLE events (id bigserial PRIMARY KEY, at timestamptz NOT NULL DEFAULT now(), kind text NOT NULL);
  INSERT INTO events (kind) SELECT (ARRAY['login', 'click', 'logout'])[1 + g % 3] FROM generate_series(1, 300) g;"

# --- pgdog configuration ----------------------------------------------------------------------
cat >"$STATEDIR/pgdog.ini" <<INI
; written by t/demo.sh
[general]
host = 127.0.0.1
port = $PGDOG_PORT
workers = 2
default_pool_size = 10
unix_socket_dir = $STATEDIR
auth_type = scram-sha-256
log_file = $STATEDIR/pgdog.log

; the first PostgreSQL instance
[databases.prod]
host = 127.0.0.1
port = $PG_PORT1
database_name = prod
role = primary

; the second PostgreSQL instance
[databases.analytics]
host = 127.0.0.1
port = $PG_PORT2
database_name = analytics
role = primary
INI

cat >"$STATEDIR/users.ini" <<INI
; written by t/demo.sh
[admin]
name = admin
user = admin
password = $ADMIN_PASSWORD

; one section per user; each user connects to one database name
[users.$APP_USER]
database = prod
password = $APP_PASSWORD
pool_size = 20

[users.$APP_USER2]
database = analytics
password = $APP_PASSWORD
pool_size = 5
INI
chmod 600 "$STATEDIR/users.ini"

say "checking the configuration"
"$PGDOG" -c "$STATEDIR/pgdog.ini" -u "$STATEDIR/users.ini" --check-config ||
	die "pgdog --check-config rejected $STATEDIR/pgdog.ini or $STATEDIR/users.ini"

say "starting $PGDOG on 127.0.0.1:$PGDOG_PORT"
"$PGDOG" -c "$STATEDIR/pgdog.ini" -u "$STATEDIR/users.ini" --daemon \
	--pidfile "$STATEDIR/pgdog.pid" >"$STATEDIR/pgdog-start.log" 2>&1 </dev/null ||
	{ cat "$STATEDIR/pgdog-start.log" >&2; die "pgdog did not start (see $STATEDIR/pgdog-start.log and $STATEDIR/pgdog.log)"; }

pid=
for ((i = 0; i < 100; i++)); do
	[ -s "$STATEDIR/pgdog.pid" ] && { pid=$(tr -dc '0-9' <"$STATEDIR/pgdog.pid"); break; }
	sleep 0.1
done
[ -n "$pid" ] || die "pgdog wrote no pidfile $STATEDIR/pgdog.pid (see $STATEDIR/pgdog.log)"
if ! wait_port "$PGDOG_PORT" 30 "$pid"; then
	tail -n 20 "$STATEDIR/pgdog.log" >&2 2>/dev/null || true
	die "pgdog (pid $pid) does not accept connections on 127.0.0.1:$PGDOG_PORT"
fi

# --- sanity queries through pgdog -------------------------------------------------------------
say "querying through pgdog"
export PGCONNECT_TIMEOUT=10
q1=$(PGPASSWORD=$APP_PASSWORD psql -X -At -h 127.0.0.1 -p "$PGDOG_PORT" -U "$APP_USER" -d prod \
	-c "SELECT current_database() || ' on port ' || inet_server_port() || ': ' || count(*) || ' accounts' FROM accounts") ||
	die "query through pgdog to prod failed (see $STATEDIR/pgdog.log)"
q2=$(PGPASSWORD=$APP_PASSWORD psql -X -At -h 127.0.0.1 -p "$PGDOG_PORT" -U "$APP_USER2" -d analytics \
	-c "SELECT current_database() || ' on port ' || inet_server_port() || ': ' || count(*) || ' events' FROM events") ||
	die "query through pgdog to analytics failed (see $STATEDIR/pgdog.log)"
say "  $q1"
say "  $q2"
if pools=$(PGPASSWORD=$ADMIN_PASSWORD psql -X -h 127.0.0.1 -p "$PGDOG_PORT" -U admin -d admin \
	-c "SHOW POOLS" 2>&1); then
	printf '%s\n' "$pools" >&2
else
	say "warning: the admin console did not answer SHOW POOLS: $pools"
fi

stoparg=
[ "$STATEDIR" = "$DEFAULT_STATEDIR" ] || stoparg=" $STATEDIR"
cat <<EOF

pgdog is running (pid $pid) on 127.0.0.1:$PGDOG_PORT in front of two PostgreSQL instances:
  database prod       -> 127.0.0.1:$PG_PORT1 (user $APP_USER; PostgreSQL data in $STATEDIR/pg1)
  database analytics  -> 127.0.0.1:$PG_PORT2 (user $APP_USER2; PostgreSQL data in $STATEDIR/pg2)
Configuration: $STATEDIR/pgdog.ini, $STATEDIR/users.ini; log: $STATEDIR/pgdog.log

Connect as an application user (password $APP_PASSWORD):
  psql "postgres://$APP_USER:$APP_PASSWORD@127.0.0.1:$PGDOG_PORT/prod"
  psql "postgres://$APP_USER2:$APP_PASSWORD@127.0.0.1:$PGDOG_PORT/analytics"
  (or: psql -h 127.0.0.1 -p $PGDOG_PORT -U $APP_USER prod   and type the password)

Admin console (password $ADMIN_PASSWORD):
  psql "postgres://admin:$ADMIN_PASSWORD@127.0.0.1:$PGDOG_PORT/admin" -c 'SHOW POOLS'
  psql -h 127.0.0.1 -p $PGDOG_PORT -U admin admin      (then SHOW CLIENTS; SHOW SERVERS; SHOW VERSION;)

Reload the configuration:   kill -HUP $pid
Stop everything:            bash $SRCDIR/t/demo.sh stop$stoparg
EOF
