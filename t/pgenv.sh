#!/bin/sh
# pgenv.sh: throwaway PostgreSQL clusters for the integration tests.
#
#   t/pgenv.sh start DIR PORT [extra postgresql.conf lines...]
#       initdb a cluster in DIR/data (socket and server log in DIR), start it
#       listening on 127.0.0.1:PORT and wait until it accepts connections.
#   t/pgenv.sh replica DIR PRIMARY_PORT PORT
#       a streaming replica of the cluster on 127.0.0.1:PRIMARY_PORT
#       (pg_basebackup -R over a replication connection of "postgres"), in
#       DIR/data, listening on 127.0.0.1:PORT, started and waited for.
#   t/pgenv.sh stop DIR
#       stop the cluster (immediate mode) and remove DIR.
#   t/pgenv.sh psql DIR PORT [psql arguments...]
#       run psql as superuser "postgres" on the cluster's Unix socket.
#
# Binaries come from PG_BINDIR, else the newest /usr/lib/postgresql/*/bin.
# initdb refuses to run as root: then DIR is given to the user "postgres"
# and every server binary runs through `runuser -u postgres --`.
set -eu

die() {
	echo "pgenv.sh: $*" >&2
	exit 1
}

find_bindir() {
	if [ -n "${PG_BINDIR:-}" ]; then
		[ -x "$PG_BINDIR/initdb" ] || die "PG_BINDIR=$PG_BINDIR has no initdb"
		echo "$PG_BINDIR"
		return
	fi
	best=
	for d in /usr/lib/postgresql/*/bin; do
		[ -x "$d/initdb" ] && best=$d
	done
	[ -n "$best" ] || die "no PostgreSQL server binaries in /usr/lib/postgresql/*/bin (install the Debian package postgresql, or set PG_BINDIR)"
	echo "$best"
}

# as_pg CMD...: run CMD as the cluster owner
as_pg() {
	if [ "$(id -u)" = 0 ]; then
		runuser -u postgres -- "$@"
	else
		"$@"
	fi
}

# cluster_dir DIR: make DIR (owned by postgres when running as root) and print its absolute path
cluster_dir() {
	local d
	mkdir -p "$1"
	d=$(cd "$1" && pwd)
	chmod 0755 "$d"
	if [ "$(id -u)" = 0 ]; then
		id postgres >/dev/null 2>&1 || die "running as root but there is no user postgres to own the cluster"
		chown postgres "$d"
	fi
	echo "$d"
}

cmd_start() {
	[ $# -ge 2 ] || die "usage: pgenv.sh start DIR PORT [conf lines...]"
	dir=$1
	port=$2
	shift 2
	bindir=$(find_bindir)
	dir=$(cluster_dir "$dir")
	as_pg "$bindir/initdb" -D "$dir/data" -A trust --no-sync -U postgres -E UTF8 \
		--locale=C >"$dir/initdb.log" 2>&1 || {
		cat "$dir/initdb.log" >&2
		die "initdb failed in $dir/data"
	}
	{
		echo "listen_addresses = '127.0.0.1'"
		echo "port = $port"
		echo "unix_socket_directories = '$dir'"
		echo "max_prepared_transactions = 16"
		echo "max_connections = 100"
		echo "fsync = off"
		echo "synchronous_commit = off"
		echo "full_page_writes = off"
		echo "shared_buffers = 32MB"
		# when and how long a backend took to start: t/lib/it.c shows this log's end for a
		# failing test case
		echo "log_connections = on"
		for line in "$@"; do
			echo "$line"
		done
	} >>"$dir/data/postgresql.conf"
	as_pg "$bindir/pg_ctl" -D "$dir/data" -l "$dir/log" -w -t 60 start >/dev/null || {
		cat "$dir/log" >&2 2>/dev/null || true
		die "pg_ctl start failed for $dir (port $port)"
	}
}

cmd_replica() {
	[ $# -eq 3 ] || die "usage: pgenv.sh replica DIR PRIMARY_PORT PORT"
	dir=$1
	primary=$2
	port=$3
	bindir=$(find_bindir)
	dir=$(cluster_dir "$dir")
	as_pg "$bindir/pg_basebackup" -h 127.0.0.1 -p "$primary" -U postgres -D "$dir/data" \
		-R -X stream --no-sync >"$dir/basebackup.log" 2>&1 || {
		cat "$dir/basebackup.log" >&2
		die "pg_basebackup from port $primary failed"
	}
	{
		# the primary's file came along: these lines win over its own
		echo "port = $port"
		echo "unix_socket_directories = '$dir'"
		echo "hot_standby = on"
	} >>"$dir/data/postgresql.conf"
	as_pg "$bindir/pg_ctl" -D "$dir/data" -l "$dir/log" -w -t 60 start >/dev/null || {
		cat "$dir/log" >&2 2>/dev/null || true
		die "pg_ctl start failed for the replica in $dir (port $port)"
	}
}

cmd_stop() {
	[ $# -ge 1 ] || die "usage: pgenv.sh stop DIR"
	dir=$1
	[ -d "$dir" ] || return 0
	bindir=$(find_bindir)
	if [ -f "$dir/data/postmaster.pid" ]; then
		as_pg "$bindir/pg_ctl" -D "$dir/data" -m immediate -w -t 30 stop >/dev/null 2>&1 || true
	fi
	rm -rf "$dir"
}

cmd_psql() {
	[ $# -ge 2 ] || die "usage: pgenv.sh psql DIR PORT [psql args...]"
	dir=$1
	port=$2
	shift 2
	bindir=$(find_bindir)
	psql=$bindir/psql
	[ -x "$psql" ] || psql=psql
	"$psql" -X -v ON_ERROR_STOP=1 -h "$dir" -p "$port" -U postgres -d postgres "$@"
}

[ $# -ge 1 ] || die "usage: pgenv.sh start|replica|stop|psql ..."
verb=$1
shift
case $verb in
start) cmd_start "$@" ;;
replica) cmd_replica "$@" ;;
stop) cmd_stop "$@" ;;
psql) cmd_psql "$@" ;;
*) die "unknown command '$verb' (start, replica, stop, psql)" ;;
esac
