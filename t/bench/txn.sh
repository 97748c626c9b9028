#!/usr/bin/env bash
# t/bench/txn.sh: transaction-mode throughput and CPU cost of pgdog against PostgreSQL directly
# and PgBouncer.
#
#   t/bench/txn.sh                 (as root, from the repository root; see "Packages" below)
#   DURATION=5 CLIENTS="1 10" t/bench/txn.sh
#   TARGETS="direct pgbouncer" t/bench/txn.sh       (without pgdog: checks the harness)
#   CPU_PROTOCOLS= t/bench/txn.sh                   (throughput table only)
#
# Set-up, all on 127.0.0.1:
#   - one PostgreSQL 15 cluster (throwaway, in $OUT/pg; trust auth; max_connections 500;
#     fsync off) with database "bench" filled by `pgbench -i -s $SCALE`;
#   - pgdog twice: pooler_mode = transaction, prepared_statements = extended, workers = 1 and
#     workers = 2, default_pool_size and the user's pool_size 10, auth trust;
#   - PgBouncer (Debian's pgbouncer package): pool_mode transaction, default_pool_size 10,
#     max_client_conn 500, auth trust (run as user postgres: it refuses root).
#
# Part 1, throughput. For every protocol (simple, extended, prepared) and client count (1, 10,
# 100), against every target with the targets interleaved within each cell:
#     pgbench -n -S -M PROTOCOL -c CLIENTS -j min(CLIENTS,2) -T DURATION
# prints the TPS of each target (median of REPEATS), its ratio to PostgreSQL direct and, for
# pgdog, its ratio to PgBouncer. PgBouncer before 1.21 cannot run -M prepared in transaction
# mode (its clients abort with "prepared statement ... does not exist"): that cell is not run
# and shows n/a. From 1.21 on it is run with max_prepared_statements = 100.
#
# Part 2, CPU per transaction of each proxy, by differencing two run lengths, so that the
# start-up of pgbench, the logins, the pool filling and the disconnects cancel out:
#   for PROTOCOL in $CPU_PROTOCOLS (simple extended), C in $CPU_CLIENTS (10 100), and each proxy
#   (pgdog-w1, pgdog-w2, pgbouncer, one after the other, the same proxies as in part 1, already warm):
#     for N in CPU_N1 CPU_N2 (total transactions, default 20000 and 120000, that is
#     -t 2000 / -t 12000 per client at 10 clients, -t 200 / -t 1200 at 100 clients):
#       cpu0 = sum over the proxy's process and all its child processes (pgdog's workers) of
#              utime + stime from /proc/PID/stat (fields 14 + 15, clock ticks)
#       pgbench -n -S -M PROTOCOL -c C -j min(C,2) -t N/C    (must process all N transactions)
#       sleep 0.5 (the proxy finishes the disconnects)
#       cpu1 = the same sum; cpu(N) = cpu1 - cpu0, txns(N) = pgbench's "actually processed"
#     us_cpu_per_txn = (cpu(N2) - cpu(N1)) * 1e6 / CLK_TCK / (txns(N2) - txns(N1))
#   The set of child PIDs must be the same before and after (a worker that died and was
#   respawned would lose its ticks): otherwise the pair is marked "respawn" and not used.
#   With CLK_TCK = 100 the resolution is 10 ms of CPU, well under 1 % of the difference.
#   The figure is user + system time of the proxy only (not of PostgreSQL or pgbench), over
#   all its processes, per transaction; it is the median over REPEATS pairs. The table prints
#   it for each proxy and the ratio pgdog / PgBouncer.
#
# Everything it started is stopped by PID (pg_ctl for PostgreSQL) on exit, also on failure or
# Ctrl-C. Every pgbench runs under `timeout` (DURATION + 60 s for part 1, CPU_TIMEOUT for part 2).
# Run time with the defaults: about 30 s of set-up, part 1 3 x 3 x 4 x 11 s = 7 min, part 2
# 2 x 2 x 3 x (two runs of 20000 + 120000 txns) = 2 to 4 min on a 2-core machine.
#
# Environment (defaults):
#   DURATION=10 REPEATS=1 CLIENTS="1 10 100" PROTOCOLS="simple extended prepared"
#   TARGETS="direct pgdog-w1 pgdog-w2 pgbouncer"   (direct is always measured: it is the reference)
#   CPU_PROTOCOLS="simple extended" CPU_CLIENTS="10 100" CPU_N1=20000 CPU_N2=120000 CPU_TIMEOUT=600
#   PGDOG_BIN   pgdog binary or build dir (default ./pgdog, ./build/pgdog, ./build-ci/pgdog)
#   PG_BINDIR=/usr/lib/postgresql/15/bin  PGBOUNCER=/usr/sbin/pgbouncer  SCALE=10  POOL=10
#   PG_PORT=27432 PGDOG_W1_PORT=28432 PGDOG_W2_PORT=28433 PGBOUNCER_PORT=28434
#               (below Linux's ephemeral range 32768-60999, where a listener can collide with
#               the local port of some outgoing connection on a busy machine)
#   PG_CPUS PROXY_CPUS PGBENCH_CPUS   taskset CPU lists; empty (the default): no pinning
#   OUT         directory for the cluster, configurations, logs, results.tsv and cpu.tsv
#               (default: mktemp -d /tmp/pgdog-txn-bench.XXXXXX); the cluster's data directory
#               is removed at the end unless KEEP=1, the logs and results stay
# Packages: apt-get install -y postgresql postgresql-client pgbouncer (and pgdog's build deps).
set -euo pipefail

SRCDIR=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
DURATION=${DURATION:-10}
REPEATS=${REPEATS:-1}
CLIENTS=${CLIENTS:-"1 10 100"}
PROTOCOLS=${PROTOCOLS:-"simple extended prepared"}
TARGETS=${TARGETS:-"direct pgdog-w1 pgdog-w2 pgbouncer"}
CPU_PROTOCOLS=${CPU_PROTOCOLS-"simple extended"}
CPU_CLIENTS=${CPU_CLIENTS:-"10 100"}
CPU_N1=${CPU_N1:-20000}
CPU_N2=${CPU_N2:-120000}
CPU_TIMEOUT=${CPU_TIMEOUT:-600}
PGBIN=${PG_BINDIR:-/usr/lib/postgresql/15/bin}
PGBOUNCER=${PGBOUNCER:-/usr/sbin/pgbouncer}
SCALE=${SCALE:-10}
POOL=${POOL:-10}
PG_PORT=${PG_PORT:-27432}
PGDOG_W1_PORT=${PGDOG_W1_PORT:-28432}
PGDOG_W2_PORT=${PGDOG_W2_PORT:-28433}
PGBOUNCER_PORT=${PGBOUNCER_PORT:-28434}
PG_CPUS=${PG_CPUS:-}
PROXY_CPUS=${PROXY_CPUS:-}
PGBENCH_CPUS=${PGBENCH_CPUS:-}
KEEP=${KEEP:-0}
DB=bench
DBUSER=postgres

log() { printf '[%s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

# --- checks -----------------------------------------------------------------------------------
[[ $DURATION =~ ^[1-9][0-9]*$ ]] || die "DURATION must be a number of seconds"
[[ $REPEATS =~ ^[1-9][0-9]*$ ]] || die "REPEATS must be a positive integer"
[[ $CPU_N1 =~ ^[1-9][0-9]*$ && $CPU_N2 =~ ^[1-9][0-9]*$ ]] || die "CPU_N1, CPU_N2 must be positive integers"
[ "$CPU_N2" -gt "$CPU_N1" ] || die "CPU_N2 must be larger than CPU_N1"
for c in $CLIENTS $CPU_CLIENTS; do
	[[ $c =~ ^[1-9][0-9]*$ ]] || die "client counts must be positive integers: $c"
done
for c in $CPU_CLIENTS; do
	[ $((CPU_N1 / c)) -gt 0 ] || die "CPU_N1 ($CPU_N1) is less than one transaction per client at $c clients"
done
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
PROXIES=${TARGETS#direct}

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
PGB_PREPARED=0 # can PgBouncer run -M prepared in transaction mode? (1.21+)
if want pgbouncer; then
	[ -x "$PGBOUNCER" ] || die "no $PGBOUNCER: apt-get install -y pgbouncer"
	pgb_ver=$("$PGBOUNCER" --version 2>/dev/null | sed -n 's/^PgBouncer \([0-9]*\)\.\([0-9]*\).*/\1 \2/p' | head -n 1)
	read -r pgb_major pgb_minor <<<"${pgb_ver:-0 0}"
	if [ "$pgb_major" -gt 1 ] || { [ "$pgb_major" = 1 ] && [ "$pgb_minor" -ge 21 ]; }; then
		PGB_PREPARED=1
	fi
fi

port_busy() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
for p in "$PG_PORT" "$PGDOG_W1_PORT" "$PGDOG_W2_PORT" "$PGBOUNCER_PORT"; do
	port_busy "$p" && die "127.0.0.1:$p is already in use (choose other ports: PG_PORT, PGDOG_W1_PORT, ...)"
done

OUT=${OUT:-$(mktemp -d /tmp/pgdog-txn-bench.XXXXXX)}
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
# --- t/bench/txn.sh ---
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
; written by t/bench/txn.sh
[general]
host = 127.0.0.1
port = $port
workers = $workers
pooler_mode = transaction
prepared_statements = extended
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
; written by t/bench/txn.sh
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
	local dir=$OUT/pgbouncer extra=
	mkdir -p "$dir"
	[ "$PGB_PREPARED" = 1 ] && extra="max_prepared_statements = 100"
	echo "\"$DBUSER\" \"\"" >"$dir/userlist.txt"
	cat >"$dir/pgbouncer.ini" <<INI
; written by t/bench/txn.sh
[databases]
$DB = host=127.0.0.1 port=$PG_PORT dbname=$DB
[pgbouncer]
listen_addr = 127.0.0.1
listen_port = $PGBOUNCER_PORT
unix_socket_dir =
auth_type = trust
auth_file = $dir/userlist.txt
pool_mode = transaction
default_pool_size = $POOL
max_client_conn = 500
logfile = $dir/pgbouncer.log
log_connections = 0
log_disconnections = 0
stats_period = 60
$extra
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

# --- helpers ----------------------------------------------------------------------------------
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
CLK_TCK=$(getconf CLK_TCK)
# pgbench_out FILE -> "TPS TXNS ABORTED" (0 when missing)
pgbench_out() {
	local tps txns ab
	tps=$(sed -n 's/^tps = \([0-9.]*\) (without initial connection time)/\1/p' "$1" | head -n 1)
	txns=$(sed -n 's/^number of transactions actually processed: \([0-9]*\).*/\1/p' "$1" | head -n 1)
	ab=$(grep -c 'aborted in command' "$1" || true)
	echo "${tps:-0} ${txns:-0} ${ab:-0}"
}
# median over an awk array: shared by the two summaries
AWK_MEDIAN='
	function median(arr, key, cnt,   i, j, t, a) {
		if (cnt == 0) return -1
		for (i = 1; i <= cnt; i++) a[i] = arr[key, i] + 0
		for (i = 1; i <= cnt; i++) for (j = i + 1; j <= cnt; j++) if (a[j] < a[i]) { t = a[i]; a[i] = a[j]; a[j] = t }
		return (cnt % 2) ? a[(cnt + 1) / 2] : (a[cnt / 2] + a[cnt / 2 + 1]) / 2
	}'

# --- part 1: throughput -----------------------------------------------------------------------
RES=$OUT/results.tsv
printf 'rep\tprotocol\tclients\ttarget\ttps\ttxns\tstatus\n' >"$RES"
ncells=$(($(wc -w <<<"$PROTOCOLS") * $(wc -w <<<"$CLIENTS") * $(wc -w <<<"$TARGETS") * REPEATS))
log "part 1: targets [$TARGETS] protocols [$PROTOCOLS] clients [$CLIENTS], ${DURATION}s each, $REPEATS repeat(s): $ncells runs, about $((ncells * (DURATION + 1) / 60 + 1)) min"
for ((rep = 1; rep <= REPEATS; rep++)); do
	for proto in $PROTOCOLS; do
		for c in $CLIENTS; do
			j=$((c < 2 ? c : 2))
			for t in $TARGETS; do
				if [ "$t" = pgbouncer ] && [ "$proto" = prepared ] && [ "$PGB_PREPARED" = 0 ]; then
					printf '%s\t%s\t%s\t%s\t0\t0\tn/a\n' "$rep" "$proto" "$c" "$t" >>"$RES"
					continue
				fi
				f=$OUT/r$rep-$proto-c$c-$t.log
				rc=0
				pin "$PGBENCH_CPUS" timeout -k 5 $((DURATION + 60)) \
					pgbench -n -S -M "$proto" -c "$c" -j "$j" -T "$DURATION" \
					-h 127.0.0.1 -p "${PORT_OF[$t]}" -U "$DBUSER" "$DB" >"$f" 2>&1 || rc=$?
				read -r tps txns aborted < <(pgbench_out "$f")
				if [ "$txns" = 0 ]; then
					st=fail
					tps=0
				elif [ "$rc" -ne 0 ] || [ "$aborted" -gt 0 ]; then
					st="abort:$aborted"
				else
					st=ok
				fi
				printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$rep" "$proto" "$c" "$t" "$tps" "$txns" "$st" >>"$RES"
				log "rep $rep $proto c=$c $t: tps=$tps ($st)"
				[ "$st" != ok ] && log "  $(grep -m 1 -iE 'error|fatal|abort' "$f" || tail -n 1 "$f")"
			done
		done
	done
done

# --- part 2: CPU per transaction by differencing ----------------------------------------------
CPU=$OUT/cpu.tsv
printf 'rep\tprotocol\tclients\ttarget\tticks_N1\ttxns_N1\tticks_N2\ttxns_N2\ttps_N2\tus_cpu_per_txn\tstatus\n' >"$CPU"
# cpu_run TARGET PROTO C N -> "TICKS TXNS TPS STATUS" for one pgbench -t N/C run
cpu_run() {
	local t=$1 proto=$2 c=$3 n=$4 pid s0 s1 k0 k1 f rc=0 tps txns ab st=ok
	local j=$((c < 2 ? c : 2))
	pid=$(pid_of "$t")
	f=$OUT/cpu-r$rep-$proto-c$c-$t-n$n.log
	read -r s0 k0 < <(cpu_snap "$pid")
	pin "$PGBENCH_CPUS" timeout -k 5 "$CPU_TIMEOUT" \
		pgbench -n -S -M "$proto" -c "$c" -j "$j" -t $((n / c)) \
		-h 127.0.0.1 -p "${PORT_OF[$t]}" -U "$DBUSER" "$DB" >"$f" 2>&1 || rc=$?
	sleep 0.5
	read -r s1 k1 < <(cpu_snap "$pid")
	read -r tps txns ab < <(pgbench_out "$f")
	if [ "$rc" -ne 0 ] || [ "$ab" -gt 0 ] || [ "$txns" != $((n / c * c)) ]; then
		st="fail(rc=$rc,txns=$txns)"
		log "  $t $proto c=$c n=$n: $(grep -m 1 -iE 'error|fatal|abort' "$f" || tail -n 1 "$f")"
	elif [ "$k0" != "$k1" ]; then
		st=respawn
		log "  $t: worker PIDs changed during the run ($k0 -> $k1)"
	fi
	echo "$((s1 - s0)) $txns $tps $st"
}
if [ -n "$CPU_PROTOCOLS" ] && [ -n "${PROXIES// /}" ]; then
	log "part 2: CPU/txn of [$PROXIES] for [$CPU_PROTOCOLS] x clients [$CPU_CLIENTS], runs of $CPU_N1 and $CPU_N2 txns (CLK_TCK $CLK_TCK)"
	for ((rep = 1; rep <= REPEATS; rep++)); do
		for proto in $CPU_PROTOCOLS; do
			for c in $CPU_CLIENTS; do
				for t in $PROXIES; do
					read -r k1 x1 _ st1 < <(cpu_run "$t" "$proto" "$c" "$CPU_N1")
					read -r k2 x2 tps2 st2 < <(cpu_run "$t" "$proto" "$c" "$CPU_N2")
					st=ok
					[ "$st1" != ok ] && st=$st1
					[ "$st2" != ok ] && st=$st2
					us=-
					if [ "$st" = ok ] && [ "$x2" -gt "$x1" ]; then
						us=$(awk -v a="$k1" -v b="$k2" -v x="$x1" -v y="$x2" -v hz="$CLK_TCK" \
							'BEGIN {printf "%.2f", (b - a) * 1e6 / hz / (y - x)}')
					fi
					printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$rep" "$proto" "$c" "$t" \
						"$k1" "$x1" "$k2" "$x2" "$tps2" "$us" "$st" >>"$CPU"
					log "rep $rep $proto c=$c $t: ${k1} ticks/${x1} txns, ${k2} ticks/${x2} txns -> ${us} us/txn ($st)"
				done
			done
		done
	done
fi

# --- tables -----------------------------------------------------------------------------------
echo
echo "Throughput: pgbench -S, transaction mode, pool 10, ${DURATION}s per run, median of $REPEATS."
echo "TPS; x-direct = TPS / PostgreSQL direct; x-pgb = TPS / PgBouncer; n/a: not supported"
awk -F'\t' -v targets="$TARGETS" "$AWK_MEDIAN"'
	NR == 1 { next }
	{
		k = $2 SUBSEP $3 SUBSEP $4
		if ($7 == "n/a") na[k] = 1
		else { n[k]++; v[k, n[k]] = $5; if ($7 != "ok") bad[k] = $7 }
		if (!(($2 SUBSEP $3) in seen)) { seen[$2 SUBSEP $3] = 1; cells[++nc] = $2 SUBSEP $3 }
	}
	END {
		nt = split(targets, T, " ")
		haspgb = (" " targets " ") ~ / pgbouncer /
		printf "protocol\tclients"
		for (t = 1; t <= nt; t++) {
			printf "\t%s", T[t]
			if (T[t] != "direct") printf "\tx-direct"
			if (T[t] ~ /^pgdog/ && haspgb) printf "\tx-pgb"
		}
		printf "\n"
		for (c = 1; c <= nc; c++) {
			split(cells[c], pc, SUBSEP)
			rk = cells[c] SUBSEP "direct"; r = median(v, rk, n[rk])
			bk = cells[c] SUBSEP "pgbouncer"; b = (bk in na) ? -1 : median(v, bk, n[bk])
			printf "%s\t%s", pc[1], pc[2]
			for (t = 1; t <= nt; t++) {
				k = cells[c] SUBSEP T[t]
				if (k in na) {
					printf "\tn/a"; if (T[t] != "direct") printf "\tn/a"
					continue
				}
				m = median(v, k, n[k])
				printf "\t%.0f%s", m, (k in bad) ? "(" bad[k] ")" : ""
				if (T[t] != "direct") printf "\t%s", (r > 0 ? sprintf("%.2f", m / r) : "-")
				if (T[t] ~ /^pgdog/ && haspgb) printf "\t%s", (b > 0 ? sprintf("%.2f", m / b) : "n/a")
			}
			printf "\n"
		}
	}' "$RES" | column -t -s $'\t' | tee "$OUT/summary.txt"

if [ "$(wc -l <"$CPU")" -gt 1 ]; then
	echo
	echo "Proxy CPU (user + system, all processes) per transaction, us, by differencing pgbench -t runs"
	echo "of $CPU_N1 and $CPU_N2 transactions (median of $REPEATS); ratio = pgdog / PgBouncer"
	awk -F'\t' -v proxies="$PROXIES" "$AWK_MEDIAN"'
		NR == 1 { next }
		{
			k = $2 SUBSEP $3 SUBSEP $4
			if ($10 != "-") { n[k]++; v[k, n[k]] = $10 } else bad[k] = $11
			if (!(($2 SUBSEP $3) in seen)) { seen[$2 SUBSEP $3] = 1; cells[++nc] = $2 SUBSEP $3 }
		}
		END {
			np = split(proxies, P, " ")
			haspgb = (" " proxies " ") ~ / pgbouncer /
			printf "protocol\tclients"
			for (p = 1; p <= np; p++) printf "\t%s", P[p]
			if (haspgb) for (p = 1; p <= np; p++) if (P[p] ~ /^pgdog/) printf "\t%s/pgb", P[p]
			printf "\n"
			for (c = 1; c <= nc; c++) {
				split(cells[c], pc, SUBSEP)
				printf "%s\t%s", pc[1], pc[2]
				b = -1
				for (p = 1; p <= np; p++) {
					k = cells[c] SUBSEP P[p]; m[p] = median(v, k, n[k])
					printf "\t%s", (m[p] >= 0 ? sprintf("%.1f", m[p]) : (k in bad ? bad[k] : "-"))
					if (P[p] == "pgbouncer") b = m[p]
				}
				if (haspgb)
					for (p = 1; p <= np; p++)
						if (P[p] ~ /^pgdog/) printf "\t%s", ((m[p] >= 0 && b > 0) ? sprintf("%.2f", m[p] / b) : "-")
				printf "\n"
			}
		}' "$CPU" | column -t -s $'\t' | tee -a "$OUT/summary.txt"
fi

# --- pgdog's own complaints -------------------------------------------------------------------
for t in pgdog-w1 pgdog-w2; do
	want "$t" || continue
	nl=$(cat "$OUT/$t"/*.log 2>/dev/null | grep -ciE 'error|fatal|warn|panic|assert' || true)
	if [ "${nl:-0}" -gt 0 ]; then
		echo
		echo "$t logged $nl error/warning line(s) ($OUT/$t/pgdog.log), first ones:"
		cat "$OUT/$t"/*.log | grep -iE 'error|fatal|warn|panic|assert' | head -n 10
	fi
done
echo
log "raw pgbench output, results.tsv and cpu.tsv in $OUT"
