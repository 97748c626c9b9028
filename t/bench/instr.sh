#!/usr/bin/env bash
# t/bench/instr.sh: user-space instructions (or system calls) per transaction inside pgdog and
# inside PgBouncer, transaction mode, counted with valgrind's callgrind (or strace): figures that
# do not depend on the machine's load, unlike TPS or CPU time.
#
#   t/bench/instr.sh                         (as root, from the repository root)
#   METRIC=syscalls t/bench/instr.sh         (system calls per transaction, with strace -c -f)
#   TARGETS=pgdog PROTOCOLS=simple CLIENTS=1 REPEATS=3 t/bench/instr.sh
#   SCRIPT=tpcb PROTOCOLS=extended t/bench/instr.sh   (pgbench's TPC-B-like transaction instead)
#
# Set-up, all on 127.0.0.1: one throwaway PostgreSQL 15 cluster (in $OUT/pg, trust auth,
# `pgbench -i -s $SCALE` into database "bench"), then, one at a time, a fresh proxy for every
# measured run:
#   - pgdog: pooler_mode = transaction, prepared_statements = extended, workers = 1,
#     default_pool_size and pool_size 10, auth trust;
#   - PgBouncer (Debian's pgbouncer): pool_mode transaction, default_pool_size 10, auth trust.
# Both run as user postgres.
#
# Method, per (target, protocol, clients C, repetition), differencing two run lengths so that
# valgrind's and the proxy's start-up, the logins, the server pool filling and the shutdown cancel:
#   for N in N1 N2 (total transactions, default 2000 and 12000: -t 200 / -t 1200 per client at
#   C = 10, -t 2000 / -t 12000 at C = 1):
#     start a fresh proxy under
#       valgrind --tool=callgrind --collect-atstart=yes --trace-children=yes --dump-instr=no
#                --vgdb=no --callgrind-out-file=$OUT/cg/callgrind.out.SEQ.%p
#     (valgrind follows fork() by itself: pgdog's supervisor and its worker each write their own
#     file; --trace-children=yes also follows any exec);
#     pgbench -n -S -M PROTOCOL -c C -j 1 -t WARMUP           (warm-up, fills the pool)
#     pgbench -n -S -M PROTOCOL -c C -j 1 -t N/C              (must process all N transactions)
#     (-S is -b select-only; SCRIPT=tpcb runs -b tpcb-like instead)
#     SIGTERM the proxy, wait until it and its workers have exited;
#     Ir(N) = the sum of the "totals:" lines of all callgrind.out.SEQ.* files (all processes)
#   instructions/txn = (Ir(N2) - Ir(N1)) / (N2 - N1)
# METRIC=syscalls: the same, with the proxy under `strace -f -c -o FILE` instead of valgrind
# (-f: the worker processes are counted too); the count is the "total" calls of strace's summary.
# Left in: the proxy's periodic timers during the extra wall time of the long run (small), and
# at C > 1 the batching of several clients' messages per wake-up, which depends on timing
# (a few % spread; C = 1 is strictly request/response and repeats closely).
# callgrind sees user-space instructions only: kernel work (send, recv, epoll) is not in the count.
# PgBouncer before 1.21 cannot run -M prepared in transaction mode: that cell shows n/a.
# Every pgbench runs under `timeout` (RUN_TIMEOUT); each proxy and PostgreSQL are stopped by PID
# (pg_ctl) on exit, also on failure or Ctrl-C.
#
# Run time with the defaults: 2 targets x 2 protocols x 2 client counts x 2 runs, each 5-20 s
# under callgrind, plus 20 s of set-up: about 4 to 6 minutes.
#
# Environment (defaults):
#   METRIC=instructions (or syscalls)  TARGETS="pgdog pgbouncer"  PROTOCOLS="simple extended"
#   CLIENTS="1 10"  N1=2000  N2=12000  WARMUP=200 (per client)  REPEATS=1 (median when > 1)
#   RUN_TIMEOUT=900 (s, per pgbench)  POOL=10  SCALE=10
#   SCRIPT=select (pgbench -S) or tpcb (pgbench's default script: BEGIN, three UPDATEs, a SELECT,
#               an INSERT, END)
#   PGDOG_BIN   pgdog binary or build dir (default ./pgdog, ./build/pgdog, ./build-ci/pgdog)
#   PG_BINDIR=/usr/lib/postgresql/15/bin  PGBOUNCER=/usr/sbin/pgbouncer
#   PG_PORT=27442 PGDOG_PORT=28442 PGBOUNCER_PORT=28443
#               (below Linux's ephemeral range 32768-60999, where a listener can collide with
#               the local port of some outgoing connection on a busy machine)
#   OUT   directory for the cluster, configurations, logs, callgrind files and instr.tsv
#         (default: mktemp -d /tmp/pgdog-instr.XXXXXX); the cluster is removed unless KEEP=1
# Packages: apt-get install -y postgresql postgresql-client pgbouncer valgrind strace
set -euo pipefail
# shellcheck source=t/bench/lib.sh
. "$(dirname "$0")/lib.sh"

BENCH=t/bench/instr.sh
SRCDIR=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
METRIC=${METRIC:-instructions}
TARGETS=${TARGETS:-"pgdog pgbouncer"}
PROTOCOLS=${PROTOCOLS:-"simple extended"}
CLIENTS=${CLIENTS:-"1 10"}
N1=${N1:-2000}
N2=${N2:-12000}
WARMUP=${WARMUP:-200}
REPEATS=${REPEATS:-1}
RUN_TIMEOUT=${RUN_TIMEOUT:-900}
POOL=${POOL:-10}
SCALE=${SCALE:-10}
SCRIPT=${SCRIPT:-select}
case $SCRIPT in
select) BUILTIN=select-only ;; # what -S runs
tpcb) BUILTIN=tpcb-like ;;
*) echo "$BENCH: SCRIPT must be select or tpcb" >&2 && exit 2 ;;
esac
PGBIN=${PG_BINDIR:-/usr/lib/postgresql/15/bin}
PGBOUNCER=${PGBOUNCER:-/usr/sbin/pgbouncer}
PG_PORT=${PG_PORT:-27442}
PGDOG_PORT=${PGDOG_PORT:-28442}
PGBOUNCER_PORT=${PGBOUNCER_PORT:-28443}
KEEP=${KEEP:-0}
DB=bench
DBUSER=postgres

# --- checks -----------------------------------------------------------------------------------
case $METRIC in
instructions) command -v valgrind >/dev/null || die "no valgrind: apt-get install -y valgrind" ;;
syscalls) command -v strace >/dev/null || die "no strace: apt-get install -y strace" ;;
*) die "METRIC must be instructions or syscalls" ;;
esac
for v in N1 N2 WARMUP REPEATS RUN_TIMEOUT; do
	[[ ${!v} =~ ^[1-9][0-9]*$ ]] || die "$v must be a positive integer"
done
[ "$N2" -gt "$N1" ] || die "N2 must be larger than N1"
for c in $CLIENTS; do
	[[ $c =~ ^[1-9][0-9]*$ ]] || die "client counts must be positive integers: $c"
	[ $((N1 / c)) -gt 0 ] || die "N1 ($N1) is less than one transaction per client at $c clients"
done
for t in $TARGETS; do
	case $t in pgdog | pgbouncer) ;; *) die "unknown target $t (known: pgdog pgbouncer)" ;; esac
done
[ "$(id -u)" = 0 ] || die "run as root (PostgreSQL and the proxies run as user postgres)"
id postgres >/dev/null 2>&1 || die "no user postgres (the postgresql package creates it)"
check_pg_tools

if want pgdog; then
	find_pgdog || die "no pgdog binary (build it or set PGDOG_BIN)"
	PGDOG=$(cd "$(dirname "$PGDOG")" && pwd)/$(basename "$PGDOG")
fi
PGB_PREPARED=0 # PgBouncer 1.21+ handles protocol-level prepared statements in transaction mode
if want pgbouncer; then
	[ -x "$PGBOUNCER" ] || die "no $PGBOUNCER: apt-get install -y pgbouncer"
	pgbouncer_prepared
fi

check_ports "PG_PORT, PGDOG_PORT, PGBOUNCER_PORT" "$PG_PORT" "$PGDOG_PORT" "$PGBOUNCER_PORT"

OUT=${OUT:-$(mktemp -d /tmp/pgdog-instr.XXXXXX)}
make_out
mkdir -p "$OUT/cg"
chown postgres:postgres "$OUT/cg"

# --- clean-up: stop exactly what we started ---------------------------------------------------
PID=        # the running proxy (valgrind / strace / the proxy itself), if any
cleanup() {
	set +e
	if [ -n "$PID" ]; then
		local child
		child=$(pgrep -P "$PID" 2>/dev/null | head -n 1)
		[ "$METRIC" = syscalls ] && [ -n "$child" ] && stop_pid "$child" 60
		stop_pid "$PID" 60
	fi
	cleanup_pg
}
set_traps

pg_setup 200 128MB

# --- proxy configurations ---------------------------------------------------------------------
mkdir -p "$OUT/pgdog" "$OUT/pgbouncer"
write_pgdog_conf "$OUT/pgdog" "$PGDOG_PORT" 1 "pooler_mode = transaction" "prepared_statements = extended"
pgb_extra=
[ "$PGB_PREPARED" = 1 ] && pgb_extra="max_prepared_statements = 100"
write_pgbouncer_conf "$OUT/pgbouncer" transaction 500 "$pgb_extra"
chown -R postgres:postgres "$OUT/pgdog" "$OUT/pgbouncer"
declare -A PORT_OF=([pgdog]=$PGDOG_PORT [pgbouncer]=$PGBOUNCER_PORT)

# --- one measured proxy lifetime --------------------------------------------------------------
SEQ=0
# start_proxy TARGET: start a fresh proxy under the counting wrapper, as postgres; sets PID
start_proxy() {
	local t=$1 wrap cmd
	SEQ=$((SEQ + 1))
	if [ "$METRIC" = syscalls ]; then
		wrap=(strace -f -c -o "$OUT/cg/strace.out.$SEQ")
	else
		wrap=(valgrind --tool=callgrind --collect-atstart=yes --trace-children=yes --dump-instr=no
			--vgdb=no "--callgrind-out-file=$OUT/cg/callgrind.out.$SEQ.%p" "--log-file=$OUT/cg/valgrind.$SEQ.%p.log")
	fi
	case $t in
	pgdog) cmd=("$PGDOG" -c "$OUT/pgdog/pgdog.ini" -u "$OUT/pgdog/users.ini") ;;
	pgbouncer) cmd=("$PGBOUNCER" "$OUT/pgbouncer/pgbouncer.ini") ;;
	esac
	# setpriv execs in place, and so does valgrind: $! is the proxy (under strace: strace)
	setpriv --reuid=postgres --regid=postgres --init-groups "${wrap[@]}" "${cmd[@]}" \
		>>"$OUT/$t/stdout.log" 2>&1 </dev/null &
	PID=$!
	wait_port "${PORT_OF[$t]}" "$PID" 1200 || proxy_failed "$t" "${PORT_OF[$t]}" "$OUT/$t"
}

# stop_proxy: SIGTERM the proxy, wait for it and its workers, make sure the counts are written
stop_proxy() {
	local child i f ok
	if [ "$METRIC" = syscalls ]; then
		child=$(pgrep -P "$PID" 2>/dev/null | head -n 1 || true) # the proxy is strace's child
		[ -n "$child" ] && stop_pid "$child" 60
		stop_pid "$PID" 60
	else
		stop_pid "$PID" 60
	fi
	PID=
	for ((i = 0; i < 300; i++)); do # a worker may still be writing its file
		ok=1
		if [ "$METRIC" = syscalls ]; then
			grep -q '^100.00' "$OUT/cg/strace.out.$SEQ" 2>/dev/null || ok=0
		else
			for f in "$OUT/cg/callgrind.out.$SEQ".*; do
				[ -e "$f" ] || { ok=0; break; }
				grep -q '^totals:' "$f" || ok=0
			done
		fi
		[ "$ok" = 1 ] && return 0
		sleep 0.1
	done
	log "counts of run $SEQ incomplete"
}

# count: the metric of run $SEQ (sum over all the proxy's processes), empty if missing
count() {
	if [ "$METRIC" = syscalls ]; then
		awk '/^100.00/ {print $4}' "$OUT/cg/strace.out.$SEQ" 2>/dev/null
	else
		cat "$OUT/cg/callgrind.out.$SEQ".* 2>/dev/null | awk '/^totals:/ {s += $2; n++} END {if (n) printf "%d %d\n", s, n}'
	fi
}

# measure TARGET PROTO C N: one fresh proxy lifetime; sets M_COUNT (0 on failure), M_TXNS, M_NP
# (number of processes counted). Runs in this shell, not a subshell: SEQ and PID must persist.
measure() {
	local t=$1 proto=$2 c=$3 n=$4 f done_n rc=0 cnt np
	start_proxy "$t"
	f=$OUT/$t-$proto-c$c-n$n-s$SEQ.log
	timeout -k 5 "$RUN_TIMEOUT" pgbench -n -b "$BUILTIN" -M "$proto" -c "$c" -j 1 -t "$WARMUP" \
		-h 127.0.0.1 -p "${PORT_OF[$t]}" -U "$DBUSER" "$DB" >"$f.warmup" 2>&1 || rc=$?
	timeout -k 5 "$RUN_TIMEOUT" pgbench -n -b "$BUILTIN" -M "$proto" -c "$c" -j 1 -t $((n / c)) \
		-h 127.0.0.1 -p "${PORT_OF[$t]}" -U "$DBUSER" "$DB" >"$f" 2>&1 || rc=$?
	stop_proxy
	read -r _ done_n _ < <(pgbench_out "$f")
	read -r cnt np < <(count) || true
	if [ "$rc" -ne 0 ] || [ "${done_n:-0}" != $((n / c * c)) ]; then
		log "$t $proto c=$c n=$n: incomplete (rc $rc, ${done_n:-0} txns): $(cat "$f.warmup" "$f" | grep -m 1 -iE 'error|fatal|abort' || tail -n 1 "$f")"
		cnt=0
	fi
	M_COUNT=${cnt:-0} M_TXNS=${done_n:-0} M_NP=${np:-1}
}

# --- measurements -----------------------------------------------------------------------------
RES=$OUT/instr.tsv
printf 'target\tprotocol\tclients\trep\tcount_N1\ttxns_N1\tcount_N2\ttxns_N2\tprocesses\t%s_per_txn\n' "$METRIC" >"$RES"
log "metric $METRIC: targets [$TARGETS] protocols [$PROTOCOLS] clients [$CLIENTS], runs of $N1 and $N2 txns, warm-up $WARMUP/client, $REPEATS repeat(s); files in $OUT"
for proto in $PROTOCOLS; do
	for c in $CLIENTS; do
		for ((rep = 1; rep <= REPEATS; rep++)); do
			for t in $TARGETS; do
				if [ "$t" = pgbouncer ] && [ "$proto" = prepared ] && [ "$PGB_PREPARED" = 0 ]; then
					printf '%s\t%s\t%s\t%s\t-\t-\t-\t-\t-\tn/a\n' "$t" "$proto" "$c" "$rep" >>"$RES"
					continue
				fi
				measure "$t" "$proto" "$c" "$N1"
				a=$M_COUNT x=$M_TXNS np=$M_NP
				measure "$t" "$proto" "$c" "$N2"
				b=$M_COUNT y=$M_TXNS
				if [ "$a" = 0 ] || [ "$b" = 0 ] || [ "$x" = "$y" ]; then
					per=FAIL
				else
					per=$(awk -v a="$a" -v b="$b" -v x="$x" -v y="$y" 'BEGIN {printf "%.2f", (b - a) / (y - x)}')
				fi
				printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$t" "$proto" "$c" "$rep" "$a" "$x" "$b" "$y" "$np" "$per" >>"$RES"
				log "$t $proto c=$c rep $rep: $a for $x txns, $b for $y txns ($np process(es)) -> $per $METRIC/txn"
			done
		done
	done
done

# --- table ------------------------------------------------------------------------------------
echo
echo "$METRIC per transaction inside the proxy (all its processes), pgbench -b $BUILTIN, transaction mode,"
echo "pool $POOL, differencing runs of $N1 and $N2 transactions; median of $REPEATS; ratio = pgdog / PgBouncer"
awk -F'\t' -v targets="$TARGETS" '
	function median(key, cnt,   i, j, t, a) {
		for (i = 1; i <= cnt; i++) a[i] = v[key, i] + 0
		for (i = 1; i <= cnt; i++) for (j = i + 1; j <= cnt; j++) if (a[j] < a[i]) { t = a[i]; a[i] = a[j]; a[j] = t }
		return (cnt % 2) ? a[(cnt + 1) / 2] : (a[cnt / 2] + a[cnt / 2 + 1]) / 2
	}
	NR == 1 { next }
	{
		k = $2 SUBSEP $3 SUBSEP $1
		if ($10 == "n/a") na[k] = 1
		else if ($10 == "FAIL") fl[k]++
		else { n[k]++; v[k, n[k]] = $10; if (!(k in lo) || $10 + 0 < lo[k]) lo[k] = $10 + 0; if ($10 + 0 > hi[k]) hi[k] = $10 + 0 }
		if (!(($2 SUBSEP $3) in seen)) { seen[$2 SUBSEP $3] = 1; cells[++nc] = $2 SUBSEP $3 }
	}
	END {
		nt = split(targets, T, " ")
		both = (" " targets " ") ~ / pgdog / && (" " targets " ") ~ / pgbouncer /
		printf "protocol\tclients"
		for (t = 1; t <= nt; t++) printf "\t%s\t(min-max)", T[t]
		if (both) printf "\tpgdog/pgbouncer"
		printf "\n"
		for (c = 1; c <= nc; c++) {
			split(cells[c], pc, SUBSEP)
			printf "%s\t%s", pc[1], pc[2]
			delete m
			for (t = 1; t <= nt; t++) {
				k = cells[c] SUBSEP T[t]
				if (k in na) { printf "\tn/a\t-"; continue }
				if (!n[k]) { printf "\tFAIL\t-"; continue }
				m[T[t]] = median(k, n[k])
				printf "\t%.1f\t%s", m[T[t]], (n[k] > 1 ? sprintf("%.1f-%.1f", lo[k], hi[k]) : "-")
			}
			if (both) printf "\t%s", ((("pgdog" in m) && ("pgbouncer" in m) && m["pgbouncer"] > 0) ? sprintf("%.2f", m["pgdog"] / m["pgbouncer"]) : "-")
			printf "\n"
		}
	}' "$RES" | column -t -s $'\t' | tee "$OUT/summary.txt"
if want pgdog; then
	nl=$(grep -ciE 'error|fatal|warn|panic|assert' "$OUT/pgdog/pgdog.log" 2>/dev/null || true)
	if [ "${nl:-0}" -gt 0 ]; then
		echo
		echo "pgdog logged $nl error/warning line(s) ($OUT/pgdog/pgdog.log), first ones:"
		grep -iE 'error|fatal|warn|panic|assert' "$OUT/pgdog/pgdog.log" | head -n 10
	fi
fi
echo
log "raw pgbench output, counts and instr.tsv in $OUT"
