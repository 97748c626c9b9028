# shellcheck shell=bash
# t/bench/lib.sh: functions shared by t/bench/session.sh, txn.sh and instr.sh (sourced, not run).
#
# The sourcing script sets, before calling them: BENCH (its name, for the comment lines of the
# files it writes), SRCDIR, PGBIN, PGBOUNCER, OUT, KEEP, DB, DBUSER, POOL, SCALE, PG_PORT,
# PGBOUNCER_PORT and, where used, TARGETS, PORT_OF and PROXY_CPUS. Sourcing sets ROOT (1 when run
# as root), PIDS ("label=pid" of each proxy started with launch), PG_STARTED and CLK_TCK, and
# defines cleanup (stop every proxy in PIDS, then PostgreSQL); a script with other processes to
# stop defines its own cleanup after sourcing and ends it with cleanup_pg.

log() { printf '[%s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

ROOT=0
[ "$(id -u)" = 0 ] && ROOT=1

# want TARGET: is it in $TARGETS?
want() { case " $TARGETS " in *" $1 "*) return 0 ;; *) return 1 ;; esac; }

# check_pg_tools: initdb, pgbench and psql are there, and user postgres when we are root
check_pg_tools() {
	[ -x "$PGBIN/initdb" ] || die "no $PGBIN/initdb: apt-get install -y postgresql (or set PG_BINDIR)"
	command -v pgbench >/dev/null || die "no pgbench: apt-get install -y postgresql-client"
	command -v psql >/dev/null || die "no psql: apt-get install -y postgresql-client"
	if [ "$ROOT" = 1 ]; then
		id postgres >/dev/null 2>&1 || die "no user postgres (the postgresql package creates it)"
	fi
}

# direct_first: check the names in $TARGETS (direct pgdog-w1 pgdog-w2 pgbouncer) and put direct,
# always measured as the reference, first
direct_first() {
	local list=direct t
	for t in $TARGETS; do
		case $t in
		direct) ;;
		pgdog-w1 | pgdog-w2 | pgbouncer) list="$list $t" ;;
		*) die "unknown target $t (known: direct pgdog-w1 pgdog-w2 pgbouncer)" ;;
		esac
	done
	TARGETS=$list
}

# find_pgdog: set PGDOG to $PGDOG_BIN (a binary or a build dir) or the first of ./pgdog,
# ./build/pgdog, ./build-ci/pgdog under SRCDIR; fails unless it is executable
find_pgdog() {
	local b
	PGDOG=
	if [ -n "${PGDOG_BIN:-}" ]; then
		PGDOG=$PGDOG_BIN
		[ -d "$PGDOG" ] && PGDOG=$PGDOG/pgdog
	else
		for b in "$SRCDIR/pgdog" "$SRCDIR/build/pgdog" "$SRCDIR/build-ci/pgdog"; do
			[ -x "$b" ] && { PGDOG=$b; break; }
		done
	fi
	[ -n "$PGDOG" ] && [ -x "$PGDOG" ]
}

# pgbouncer_prepared: set PGB_PREPARED=1 when $PGBOUNCER (1.21+) handles protocol-level prepared
# statements in transaction mode (-M prepared), else 0
pgbouncer_prepared() {
	local pgb_ver pgb_major pgb_minor
	# shellcheck disable=SC2034 # used by the sourcing script
	PGB_PREPARED=0
	pgb_ver=$("$PGBOUNCER" --version 2>/dev/null | sed -n 's/^PgBouncer \([0-9]*\)\.\([0-9]*\).*/\1 \2/p' | head -n 1)
	read -r pgb_major pgb_minor <<<"${pgb_ver:-0 0}"
	if [ "$pgb_major" -gt 1 ] || { [ "$pgb_major" = 1 ] && [ "$pgb_minor" -ge 21 ]; }; then
		# shellcheck disable=SC2034
		PGB_PREPARED=1
	fi
}

port_busy() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
# check_ports HINT PORT...: die if one of the ports is already taken
check_ports() {
	local hint=$1 p
	shift
	for p in "$@"; do
		port_busy "$p" && die "127.0.0.1:$p is already in use (choose other ports: $hint)"
	done
	return 0
}
# wait_port PORT PID TRIES: wait (TRIES x 0.1 s) until PORT accepts connections; fails when
# PID exits first or on timeout
wait_port() {
	local i
	for ((i = 0; i < $3; i++)); do
		port_busy "$1" && return 0
		kill -0 "$2" 2>/dev/null || return 1
		sleep 0.1
	done
	return 1
}

# make_out: create $OUT (readable by postgres), raise the open-files limit
make_out() {
	mkdir -p "$OUT"
	chmod 755 "$OUT"
	[ "$ROOT" = 1 ] && chown postgres:postgres "$OUT"
	ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
}

# pin CPULIST CMD...: run CMD under taskset when a CPU list is given
pin() {
	local cpus=$1
	shift
	if [ -n "$cpus" ]; then taskset -c "$cpus" "$@"; else "$@"; fi
}
# as_pg CMD...: run CMD as user postgres when we are root
as_pg() {
	if [ "$ROOT" = 1 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

# --- clean-up: stop exactly what we started ---------------------------------------------------
PIDS=() # "label=pid" of each proxy
PG_STARTED=0
stop_pid() { # stop_pid PID [TIMEOUT_S]: SIGTERM, wait (default 15 s), SIGKILL
	local pid=$1 t=${2:-15} i
	[ -n "$pid" ] || return 0
	kill -0 "$pid" 2>/dev/null || return 0
	kill -TERM "$pid" 2>/dev/null || true
	for ((i = 0; i < t * 10; i++)); do
		kill -0 "$pid" 2>/dev/null || return 0
		sleep 0.1
	done
	log "pid $pid did not stop in $t s: SIGKILL"
	kill -KILL "$pid" 2>/dev/null || true
}
# cleanup_pg: stop PostgreSQL if we started it, remove its data directory unless KEEP=1
cleanup_pg() {
	if [ "$PG_STARTED" = 1 ]; then
		as_pg "$PGBIN/pg_ctl" -D "$OUT/pg" -m fast -w -t 60 stop >/dev/null 2>&1
	fi
	if [ "$KEEP" = 1 ]; then
		log "kept $OUT"
	else
		rm -rf "$OUT/pg"
	fi
}
cleanup() {
	local kv
	set +e
	for kv in "${PIDS[@]}"; do
		stop_pid "${kv#*=}"
	done
	cleanup_pg
}
# set_traps: run cleanup on exit, also on failure or Ctrl-C
set_traps() {
	trap cleanup EXIT
	trap 'exit 130' INT TERM
}

# --- PostgreSQL -------------------------------------------------------------------------------
# pg_setup MAX_CONNECTIONS SHARED_BUFFERS [CPULIST]: a throwaway cluster in $OUT/pg on $PG_PORT
# (under taskset when a CPU list is given) with database $DB filled by pgbench -i -s $SCALE
pg_setup() {
	local runas=()
	log "PostgreSQL: initdb in $OUT/pg, port $PG_PORT"
	as_pg "$PGBIN/initdb" -D "$OUT/pg" -U "$DBUSER" -A trust -E UTF8 --locale=C --no-sync \
		>"$OUT/initdb.log" 2>&1 || die "initdb failed, see $OUT/initdb.log"
	cat >>"$OUT/pg/postgresql.conf" <<CONF
# --- $BENCH ---
port = $PG_PORT
listen_addresses = '127.0.0.1'
unix_socket_directories = '$OUT'
max_connections = $1
shared_buffers = $2
fsync = off
synchronous_commit = off
full_page_writes = off
logging_collector = off
log_min_messages = warning
CONF
	[ "$ROOT" = 1 ] && runas=(runuser -u postgres --)
	pin "${3:-}" "${runas[@]}" "$PGBIN/pg_ctl" -D "$OUT/pg" -l "$OUT/postgresql.log" -w -t 60 start >/dev/null ||
		die "PostgreSQL did not start, see $OUT/postgresql.log"
	PG_STARTED=1
	psql -X -q -h 127.0.0.1 -p "$PG_PORT" -U "$DBUSER" -d postgres -c "CREATE DATABASE $DB" >/dev/null
	log "pgbench -i -s $SCALE"
	pgbench -i -q -s "$SCALE" -h 127.0.0.1 -p "$PG_PORT" -U "$DBUSER" "$DB" >"$OUT/pgbench-init.log" 2>&1 ||
		die "pgbench -i failed, see $OUT/pgbench-init.log"
	psql -X -q -h 127.0.0.1 -p "$PG_PORT" -U "$DBUSER" -d "$DB" -c "VACUUM ANALYZE" >/dev/null
}

# --- proxies ----------------------------------------------------------------------------------
# write_pgdog_conf DIR PORT WORKERS [LINE...]: DIR/pgdog.ini (with the LINEs in [general]) and
# DIR/users.ini for user $DBUSER on $DB, pool $POOL, auth trust
write_pgdog_conf() {
	local dir=$1 port=$2 workers=$3 extra=
	shift 3
	[ $# -gt 0 ] && printf -v extra '%s\n' "$@"
	cat >"$dir/pgdog.ini" <<INI
; written by $BENCH
[general]
host = 127.0.0.1
port = $port
workers = $workers
${extra}default_pool_size = $POOL
unix_socket_dir = $dir
auth_type = trust
log_file = $dir/pgdog.log
log_connections = false
log_disconnections = false

[databases.$DB]
host = 127.0.0.1
port = $PG_PORT
database_name = $DB
role = primary
INI
	cat >"$dir/users.ini" <<INI
; written by $BENCH
[admin]
name = admin
user = admin
password = bench

[users.$DBUSER]
database = $DB
password = bench
pool_size = $POOL
INI
}

# write_pgbouncer_conf DIR POOL_MODE MAX_CLIENT_CONN [LINE...]: DIR/userlist.txt and
# DIR/pgbouncer.ini (listening on $PGBOUNCER_PORT, the LINEs at the end of [pgbouncer])
write_pgbouncer_conf() {
	local dir=$1 mode=$2 max_client=$3 extra=
	shift 3
	[ $# -gt 0 ] && printf -v extra '%s\n' "$@"
	echo "\"$DBUSER\" \"\"" >"$dir/userlist.txt"
	cat >"$dir/pgbouncer.ini" <<INI
; written by $BENCH
[databases]
$DB = host=127.0.0.1 port=$PG_PORT dbname=$DB
[pgbouncer]
listen_addr = 127.0.0.1
listen_port = $PGBOUNCER_PORT
unix_socket_dir =
auth_type = trust
auth_file = $dir/userlist.txt
pool_mode = $mode
default_pool_size = $POOL
max_client_conn = $max_client
logfile = $dir/pgbouncer.log
log_connections = 0
log_disconnections = 0
stats_period = 60
INI
	printf '%s' "$extra" >>"$dir/pgbouncer.ini"
}

# proxy_failed LABEL PORT DIR: show the proxy's logs and die
proxy_failed() {
	tail -n 20 "$3"/*.log >&2 2>/dev/null || true
	die "$1 did not start on 127.0.0.1:$2 (see $3)"
}

# launch LABEL PORT DIR CMD...: start CMD in the background (as postgres when root), wait until
# it accepts connections on PORT, record its PID.
launch() {
	local label=$1 port=$2 dir=$3 pid
	shift 3
	# taskset and setpriv exec in place, so $! is the proxy itself
	local cmd=()
	[ -n "$PROXY_CPUS" ] && cmd+=(taskset -c "$PROXY_CPUS")
	[ "$ROOT" = 1 ] && cmd+=(setpriv --reuid=postgres --regid=postgres --init-groups)
	"${cmd[@]}" "$@" >"$dir/stdout.log" 2>&1 </dev/null &
	pid=$!
	PIDS+=("$label=$pid")
	if wait_port "$port" "$pid" 300; then
		log "$label on 127.0.0.1:$port, pid $pid"
		return 0
	fi
	proxy_failed "$label" "$port" "$dir"
}

# start_pgdog LABEL PORT WORKERS [LINE...]: configure (LINEs in [general]) and launch a pgdog
# in $OUT/LABEL
start_pgdog() {
	local label=$1 port=$2 workers=$3 dir=$OUT/$1
	shift 3
	mkdir -p "$dir"
	write_pgdog_conf "$dir" "$port" "$workers" "$@"
	[ "$ROOT" = 1 ] && chown -R postgres:postgres "$dir"
	launch "$label" "$port" "$dir" "$PGDOG" -c "$dir/pgdog.ini" -u "$dir/users.ini"
}

# start_pgbouncer POOL_MODE MAX_CLIENT_CONN [LINE...]: configure and launch PgBouncer in
# $OUT/pgbouncer
start_pgbouncer() {
	local dir=$OUT/pgbouncer
	mkdir -p "$dir"
	write_pgbouncer_conf "$dir" "$@"
	[ "$ROOT" = 1 ] && chown -R postgres:postgres "$dir"
	launch pgbouncer "$PGBOUNCER_PORT" "$dir" "$PGBOUNCER" "$dir/pgbouncer.ini"
}

# probe_targets: every target in $TARGETS (ports in PORT_OF) answers a query
probe_targets() {
	local t
	for t in $TARGETS; do
		psql -X -At -h 127.0.0.1 -p "${PORT_OF[$t]}" -U "$DBUSER" -d "$DB" \
			-c "SELECT count(*) FROM pgbench_branches" >/dev/null 2>"$OUT/probe-$t.err" ||
			die "$t does not answer a query: $(head -c 300 "$OUT/probe-$t.err")"
	done
}

# --- measurements -----------------------------------------------------------------------------
pid_of() { local kv; for kv in "${PIDS[@]}"; do [ "${kv%%=*}" = "$1" ] && echo "${kv#*=}"; done; return 0; }
# cpu_snap PID: "TICKS CHILDREN": utime+stime (all threads) of the process and of its live
# children (pgdog's workers), and the sorted comma-separated list of those children
cpu_snap() {
	local p sum=0 v kids
	kids=$( (pgrep -P "$1" 2>/dev/null || true) | sort -n | paste -sd, -)
	for p in "$1" ${kids//,/ }; do
		v=$(awk '{print $14 + $15}' "/proc/$p/stat" 2>/dev/null || echo 0)
		sum=$((sum + ${v:-0}))
	done
	echo "$sum ${kids:--}"
}
# shellcheck disable=SC2034 # used by the sourcing script
CLK_TCK=$(getconf CLK_TCK)
# pgbench_out FILE -> "TPS TXNS ABORTED" (0 when missing)
pgbench_out() {
	local tps txns ab
	tps=$(sed -n 's/^tps = \([0-9.]*\) (without initial connection time)/\1/p' "$1" | head -n 1)
	txns=$(sed -n 's/^number of transactions actually processed: \([0-9]*\).*/\1/p' "$1" | head -n 1)
	ab=$(grep -c 'aborted in command' "$1" || true)
	echo "${tps:-0} ${txns:-0} ${ab:-0}"
}
