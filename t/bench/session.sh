#!/usr/bin/env bash
# t/bench/session.sh: session-mode throughput of pgdog against PostgreSQL directly and PgBouncer.
#
#   t/bench/session.sh            (as root on Debian 12; see "Packages" below)
#   DURATION=5 CLIENTS="1 10" t/bench/session.sh
#   TARGETS="direct pgbouncer" t/bench/session.sh      (without pgdog: checks the harness)
#
# In one run it starts, on 127.0.0.1 only:
#   - one PostgreSQL 15 cluster (throwaway, in $OUT/pg; trust auth; max_connections 500;
#     fsync off) with database "bench" filled by `pgbench -i -s $SCALE`;
#   - pgdog twice, session mode, workers = 1 and workers = 2, pool_size 110, auth trust;
#   - PgBouncer from Debian's pgbouncer package, pool_mode session, default_pool_size 110,
#     max_client_conn 200, auth trust (as user postgres: it refuses root);
# then runs `pgbench -n -S -M PROTOCOL -c CLIENTS -j min(CLIENTS,2) -T DURATION` for every
# protocol (simple, extended, prepared) and client count (1, 10, 100) against every target,
# the targets interleaved within each cell, and prints the TPS of each target, its ratio to
# PostgreSQL direct, and the CPU time the proxy (with its worker processes) spent per transaction.
# With REPEATS > 1 each figure is the median. Everything it started is stopped by PID (pg_ctl for
# PostgreSQL) on exit, also on failure or Ctrl-C.
#
# Run time: about 30 s of set-up plus protocols x clients x targets x (DURATION + ~1 s) x REPEATS:
# with the defaults 3 x 3 x 4 x 11 s = about 7 minutes. Every pgbench is killed after DURATION+60 s.
#
# Environment (defaults):
#   DURATION=10 REPEATS=1 CLIENTS="1 10 100" PROTOCOLS="simple extended prepared"
#   TARGETS="direct pgdog-w1 pgdog-w2 pgbouncer"   (direct is always measured: it is the reference)
#   PGDOG_BIN   pgdog binary or build dir (default ./pgdog, ./build/pgdog, ./build-ci/pgdog)
#   PG_BINDIR=/usr/lib/postgresql/15/bin  PGBOUNCER=/usr/sbin/pgbouncer  SCALE=10
#   PG_PORT=35432 PGDOG_W1_PORT=36432 PGDOG_W2_PORT=36433 PGBOUNCER_PORT=36434
#   PG_CPUS PROXY_CPUS PGBENCH_CPUS   taskset CPU lists; empty (the default): no pinning
#   OUT         directory for the cluster, configurations, logs and results.tsv
#               (default: mktemp -d /tmp/pgdog-bench.XXXXXX); the cluster's data directory is
#               removed at the end unless KEEP=1, the logs and results stay
# Packages: apt-get install -y postgresql postgresql-client pgbouncer (and pgdog's build deps).
set -euo pipefail

SRCDIR=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
DURATION=${DURATION:-10}
REPEATS=${REPEATS:-1}
CLIENTS=${CLIENTS:-"1 10 100"}
PROTOCOLS=${PROTOCOLS:-"simple extended prepared"}
TARGETS=${TARGETS:-"direct pgdog-w1 pgdog-w2 pgbouncer"}
PGBIN=${PG_BINDIR:-/usr/lib/postgresql/15/bin}
PGBOUNCER=${PGBOUNCER:-/usr/sbin/pgbouncer}
SCALE=${SCALE:-10}
PG_PORT=${PG_PORT:-35432}
PGDOG_W1_PORT=${PGDOG_W1_PORT:-36432}
PGDOG_W2_PORT=${PGDOG_W2_PORT:-36433}
PGBOUNCER_PORT=${PGBOUNCER_PORT:-36434}
PG_CPUS=${PG_CPUS:-}
PROXY_CPUS=${PROXY_CPUS:-}
PGBENCH_CPUS=${PGBENCH_CPUS:-}
KEEP=${KEEP:-0}
POOL=110
DB=bench
DBUSER=postgres

log() { printf '[%s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

# --- checks -----------------------------------------------------------------------------------
[[ $DURATION =~ ^[1-9][0-9]*$ ]] || die "DURATION must be a number of seconds"
[[ $REPEATS =~ ^[1-9][0-9]*$ ]] || die "REPEATS must be a positive integer"
[ -x "$PGBIN/initdb" ] || die "no $PGBIN/initdb: apt-get install -y postgresql (or set PG_BINDIR)"
command -v pgbench >/dev/null || die "no pgbench: apt-get install -y postgresql-client"
command -v psql >/dev/null || die "no psql: apt-get install -y postgresql-client"
ROOT=0
[ "$(id -u)" = 0 ] && ROOT=1
if [ "$ROOT" = 1 ]; then
	id postgres >/dev/null 2>&1 || die "no user postgres (the postgresql package creates it)"
fi

want() { # want TARGET: is it in $TARGETS?
	case " $TARGETS " in *" $1 "*) return 0 ;; *) return 1 ;; esac
}
list=direct # direct first, always: it is the reference
for t in $TARGETS; do
	case $t in
	direct) ;;
	pgdog-w1 | pgdog-w2 | pgbouncer) list="$list $t" ;;
	*) die "unknown target $t (known: direct pgdog-w1 pgdog-w2 pgbouncer)" ;;
	esac
done
TARGETS=$list

PGDOG=
if want pgdog-w1 || want pgdog-w2; then
	if [ -n "${PGDOG_BIN:-}" ]; then
		PGDOG=$PGDOG_BIN
		[ -d "$PGDOG" ] && PGDOG=$PGDOG/pgdog
	else
		for b in "$SRCDIR/pgdog" "$SRCDIR/build/pgdog" "$SRCDIR/build-ci/pgdog"; do
			[ -x "$b" ] && { PGDOG=$b; break; }
		done
	fi
	if [ -z "$PGDOG" ] || [ ! -x "$PGDOG" ]; then
		die "no pgdog binary (build it, or set PGDOG_BIN, or TARGETS=\"direct pgbouncer\")"
	fi
fi
if want pgbouncer; then
	[ -x "$PGBOUNCER" ] || die "no $PGBOUNCER: apt-get install -y pgbouncer"
fi

port_busy() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
for p in "$PG_PORT" "$PGDOG_W1_PORT" "$PGDOG_W2_PORT" "$PGBOUNCER_PORT"; do
	port_busy "$p" && die "127.0.0.1:$p is already in use (choose other ports: PG_PORT, PGDOG_W1_PORT, ...)"
done

OUT=${OUT:-$(mktemp -d /tmp/pgdog-bench.XXXXXX)}
mkdir -p "$OUT"
chmod 755 "$OUT"
[ "$ROOT" = 1 ] && chown postgres:postgres "$OUT"
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

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
stop_pid() { # SIGTERM, wait up to 15 s, SIGKILL
	local pid=$1 i
	kill -0 "$pid" 2>/dev/null || return 0
	kill -TERM "$pid" 2>/dev/null || true
	for ((i = 0; i < 150; i++)); do
		kill -0 "$pid" 2>/dev/null || return 0
		sleep 0.1
	done
	log "pid $pid did not stop in 15 s: SIGKILL"
	kill -KILL "$pid" 2>/dev/null || true
}
cleanup() {
	local kv
	set +e
	for kv in "${PIDS[@]}"; do
		stop_pid "${kv#*=}"
	done
	if [ "$PG_STARTED" = 1 ]; then
		as_pg "$PGBIN/pg_ctl" -D "$OUT/pg" -m fast -w -t 60 stop >/dev/null 2>&1
	fi
	if [ "$KEEP" = 1 ]; then
		log "kept $OUT"
	else
		rm -rf "$OUT/pg"
	fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# --- PostgreSQL -------------------------------------------------------------------------------
log "PostgreSQL: initdb in $OUT/pg, port $PG_PORT"
as_pg "$PGBIN/initdb" -D "$OUT/pg" -U "$DBUSER" -A trust -E UTF8 --locale=C --no-sync \
	>"$OUT/initdb.log" 2>&1 || die "initdb failed, see $OUT/initdb.log"
cat >>"$OUT/pg/postgresql.conf" <<CONF
# --- t/bench/session.sh ---
port = $PG_PORT
listen_addresses = '127.0.0.1'
unix_socket_directories = '$OUT'
max_connections = 500
shared_buffers = 256MB
fsync = off
synchronous_commit = off
full_page_writes = off
logging_collector = off
log_min_messages = warning
CONF
if [ "$ROOT" = 1 ]; then
	pin "$PG_CPUS" runuser -u postgres -- "$PGBIN/pg_ctl" -D "$OUT/pg" -l "$OUT/postgresql.log" -w -t 60 start >/dev/null ||
		die "PostgreSQL did not start, see $OUT/postgresql.log"
else
	pin "$PG_CPUS" "$PGBIN/pg_ctl" -D "$OUT/pg" -l "$OUT/postgresql.log" -w -t 60 start >/dev/null ||
		die "PostgreSQL did not start, see $OUT/postgresql.log"
fi
PG_STARTED=1
psql -X -q -h 127.0.0.1 -p "$PG_PORT" -U "$DBUSER" -d postgres -c "CREATE DATABASE $DB" >/dev/null
log "pgbench -i -s $SCALE"
pgbench -i -q -s "$SCALE" -h 127.0.0.1 -p "$PG_PORT" -U "$DBUSER" "$DB" >"$OUT/pgbench-init.log" 2>&1 ||
	die "pgbench -i failed, see $OUT/pgbench-init.log"
psql -X -q -h 127.0.0.1 -p "$PG_PORT" -U "$DBUSER" -d "$DB" -c "VACUUM ANALYZE" >/dev/null

# --- proxies ----------------------------------------------------------------------------------
# launch LABEL PORT DIR CMD...: start CMD in the background (as postgres when root), wait until
# it accepts connections on PORT, record its PID.
launch() {
	local label=$1 port=$2 dir=$3 pid i
	shift 3
	# taskset and setpriv exec in place, so $! is the proxy itself
	local cmd=()
	[ -n "$PROXY_CPUS" ] && cmd+=(taskset -c "$PROXY_CPUS")
	[ "$ROOT" = 1 ] && cmd+=(setpriv --reuid=postgres --regid=postgres --init-groups)
	"${cmd[@]}" "$@" >"$dir/stdout.log" 2>&1 </dev/null &
	pid=$!
	PIDS+=("$label=$pid")
	for ((i = 0; i < 300; i++)); do
		port_busy "$port" && { log "$label on 127.0.0.1:$port, pid $pid"; return 0; }
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.1
	done
	tail -n 20 "$dir"/*.log >&2 2>/dev/null || true
	die "$label did not start on 127.0.0.1:$port (see $dir)"
}

start_pgdog() { # start_pgdog LABEL PORT WORKERS
	local label=$1 port=$2 workers=$3 dir=$OUT/$1
	mkdir -p "$dir"
	cat >"$dir/pgdog.ini" <<INI
; written by t/bench/session.sh
[general]
host = 127.0.0.1
port = $port
workers = $workers
default_pool_size = $POOL
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
; written by t/bench/session.sh
[admin]
name = admin
user = admin
password = bench

[users.$DBUSER]
database = $DB
password = bench
pool_size = $POOL
INI
	[ "$ROOT" = 1 ] && chown -R postgres:postgres "$dir"
	launch "$label" "$port" "$dir" "$PGDOG" -c "$dir/pgdog.ini" -u "$dir/users.ini"
}

start_pgbouncer() {
	local dir=$OUT/pgbouncer
	mkdir -p "$dir"
	echo "\"$DBUSER\" \"\"" >"$dir/userlist.txt"
	cat >"$dir/pgbouncer.ini" <<INI
; written by t/bench/session.sh
[databases]
$DB = host=127.0.0.1 port=$PG_PORT dbname=$DB
[pgbouncer]
listen_addr = 127.0.0.1
listen_port = $PGBOUNCER_PORT
unix_socket_dir =
auth_type = trust
auth_file = $dir/userlist.txt
pool_mode = session
default_pool_size = $POOL
max_client_conn = 200
logfile = $dir/pgbouncer.log
log_connections = 0
log_disconnections = 0
stats_period = 60
INI
	[ "$ROOT" = 1 ] && chown -R postgres:postgres "$dir"
	launch pgbouncer "$PGBOUNCER_PORT" "$dir" "$PGBOUNCER" "$dir/pgbouncer.ini"
}

declare -A PORT_OF=([direct]=$PG_PORT [pgdog-w1]=$PGDOG_W1_PORT [pgdog-w2]=$PGDOG_W2_PORT
	[pgbouncer]=$PGBOUNCER_PORT)
want pgdog-w1 && start_pgdog pgdog-w1 "$PGDOG_W1_PORT" 1
want pgdog-w2 && start_pgdog pgdog-w2 "$PGDOG_W2_PORT" 2
want pgbouncer && start_pgbouncer

# every target answers before we measure
for t in $TARGETS; do
	psql -X -At -h 127.0.0.1 -p "${PORT_OF[$t]}" -U "$DBUSER" -d "$DB" \
		-c "SELECT count(*) FROM pgbench_branches" >/dev/null 2>"$OUT/probe-$t.err" ||
		die "$t does not answer a query: $(head -c 300 "$OUT/probe-$t.err")"
done

# --- measurements -----------------------------------------------------------------------------
pid_of() { local kv; for kv in "${PIDS[@]}"; do [ "${kv%%=*}" = "$1" ] && echo "${kv#*=}"; done; return 0; }
# cpu_ticks PID: utime+stime of the process and of its live children (pgdog's workers)
cpu_ticks() {
	local p sum=0 v
	for p in "$1" $(pgrep -P "$1" 2>/dev/null); do
		v=$(awk '{print $14 + $15}' "/proc/$p/stat" 2>/dev/null || echo 0)
		sum=$((sum + ${v:-0}))
	done
	echo "$sum"
}
CLK_TCK=$(getconf CLK_TCK)

RES=$OUT/results.tsv
printf 'rep\tprotocol\tclients\ttarget\ttps\ttxns\tstatus\tproxy_cpu_us_per_txn\n' >"$RES"
ncells=$(($(wc -w <<<"$PROTOCOLS") * $(wc -w <<<"$CLIENTS") * $(wc -w <<<"$TARGETS") * REPEATS))
log "measuring: targets [$TARGETS] protocols [$PROTOCOLS] clients [$CLIENTS], ${DURATION}s each, $REPEATS repeat(s): $ncells runs, about $((ncells * (DURATION + 1) / 60 + 1)) min"
for ((rep = 1; rep <= REPEATS; rep++)); do
	for proto in $PROTOCOLS; do
		for c in $CLIENTS; do
			j=$((c < 2 ? c : 2))
			for t in $TARGETS; do
				f=$OUT/r$rep-$proto-c$c-$t.log
				pid=$(pid_of "$t")
				t0=0
				[ -n "$pid" ] && t0=$(cpu_ticks "$pid")
				rc=0
				pin "$PGBENCH_CPUS" timeout -k 5 $((DURATION + 60)) \
					pgbench -n -S -M "$proto" -c "$c" -j "$j" -T "$DURATION" \
					-h 127.0.0.1 -p "${PORT_OF[$t]}" -U "$DBUSER" "$DB" >"$f" 2>&1 || rc=$?
				t1=0
				[ -n "$pid" ] && t1=$(cpu_ticks "$pid")
				tps=$(sed -n 's/^tps = \([0-9.]*\) (without initial connection time)/\1/p' "$f" | head -n 1)
				txns=$(sed -n 's/^number of transactions actually processed: \([0-9]*\).*/\1/p' "$f" | head -n 1)
				aborted=$(grep -c 'aborted in command' "$f" || true)
				if [ -z "$tps" ] || [ "${txns:-0}" = 0 ]; then
					st=fail
					tps=0
				elif [ "$rc" -ne 0 ] || [ "$aborted" -gt 0 ]; then
					st="abort:$aborted"
				else
					st=ok
				fi
				cpu=-
				if [ -n "$pid" ] && [ "${txns:-0}" -gt 0 ]; then
					cpu=$(awk -v d=$((t1 - t0)) -v n="$txns" -v hz="$CLK_TCK" 'BEGIN {printf "%.1f", d * 1e6 / hz / n}')
				fi
				printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$rep" "$proto" "$c" "$t" "$tps" "${txns:-0}" "$st" "$cpu" >>"$RES"
				log "rep $rep $proto c=$c $t: tps=$tps ($st) proxy cpu/txn=${cpu}us"
				[ "$st" = fail ] && log "  $(grep -m 1 -iE 'error|fatal' "$f" || tail -n 1 "$f")"
			done
		done
	done
done

# --- table ------------------------------------------------------------------------------------
echo
echo "pgbench -S, session mode, ${DURATION}s per run, median of $REPEATS; TPS (ratio to direct) [proxy CPU us/txn]"
awk -F'\t' -v targets="$TARGETS" '
	NR == 1 { next }
	{
		k = $2 SUBSEP $3 SUBSEP $4; n[k]++; v[k, n[k]] = $5
		if ($8 != "-") { cn[k]++; cv[k, cn[k]] = $8 }
		if ($7 != "ok") bad[k] = $7
		if (!(($2 SUBSEP $3) in seen)) { seen[$2 SUBSEP $3] = 1; cells[++nc] = $2 SUBSEP $3 }
	}
	function median(arr, key, cnt,   i, j, t, a) {
		if (cnt == 0) return 0
		for (i = 1; i <= cnt; i++) a[i] = arr[key, i] + 0
		for (i = 1; i <= cnt; i++) for (j = i + 1; j <= cnt; j++) if (a[j] < a[i]) { t = a[i]; a[i] = a[j]; a[j] = t }
		return (cnt % 2) ? a[(cnt + 1) / 2] : (a[cnt / 2] + a[cnt / 2 + 1]) / 2
	}
	END {
		nt = split(targets, T, " ")
		printf "%-9s %7s", "protocol", "clients"
		for (t = 1; t <= nt; t++) printf "  %-26s", T[t]
		printf "\n"
		for (c = 1; c <= nc; c++) {
			split(cells[c], pc, SUBSEP)
			rk = cells[c] SUBSEP "direct"; r = median(v, rk, n[rk])
			printf "%-9s %7s", pc[1], pc[2]
			for (t = 1; t <= nt; t++) {
				k = cells[c] SUBSEP T[t]; m = median(v, k, n[k])
				s = sprintf("%.0f", m)
				if (T[t] != "direct") s = s sprintf(" (%.2f)", r > 0 ? m / r : 0)
				if (cn[k] > 0) s = s sprintf(" [%.1f]", median(cv, k, cn[k]))
				if (k in bad) s = s " " bad[k]
				printf "  %-26s", s
			}
			printf "\n"
		}
	}' "$RES" | tee "$OUT/summary.txt"
echo
log "raw pgbench output and results.tsv in $OUT"
