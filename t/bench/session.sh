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
# shellcheck source=t/bench/lib.sh
. "$(dirname "$0")/lib.sh"

BENCH=t/bench/session.sh
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

# --- checks -----------------------------------------------------------------------------------
[[ $DURATION =~ ^[1-9][0-9]*$ ]] || die "DURATION must be a number of seconds"
[[ $REPEATS =~ ^[1-9][0-9]*$ ]] || die "REPEATS must be a positive integer"
check_pg_tools
direct_first # direct first, always: it is the reference

if want pgdog-w1 || want pgdog-w2; then
	find_pgdog || die "no pgdog binary (build it, or set PGDOG_BIN, or TARGETS=\"direct pgbouncer\")"
fi
if want pgbouncer; then
	[ -x "$PGBOUNCER" ] || die "no $PGBOUNCER: apt-get install -y pgbouncer"
fi

check_ports "PG_PORT, PGDOG_W1_PORT, ..." "$PG_PORT" "$PGDOG_W1_PORT" "$PGDOG_W2_PORT" "$PGBOUNCER_PORT"

OUT=${OUT:-$(mktemp -d /tmp/pgdog-bench.XXXXXX)}
make_out
set_traps

pg_setup 500 256MB "$PG_CPUS"

declare -A PORT_OF=([direct]=$PG_PORT [pgdog-w1]=$PGDOG_W1_PORT [pgdog-w2]=$PGDOG_W2_PORT
	[pgbouncer]=$PGBOUNCER_PORT)
want pgdog-w1 && start_pgdog pgdog-w1 "$PGDOG_W1_PORT" 1
want pgdog-w2 && start_pgdog pgdog-w2 "$PGDOG_W2_PORT" 2
want pgbouncer && start_pgbouncer session 200

# every target answers before we measure
probe_targets

# --- measurements -----------------------------------------------------------------------------
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
				[ -n "$pid" ] && read -r t0 _ < <(cpu_snap "$pid")
				rc=0
				pin "$PGBENCH_CPUS" timeout -k 5 $((DURATION + 60)) \
					pgbench -n -S -M "$proto" -c "$c" -j "$j" -T "$DURATION" \
					-h 127.0.0.1 -p "${PORT_OF[$t]}" -U "$DBUSER" "$DB" >"$f" 2>&1 || rc=$?
				t1=0
				[ -n "$pid" ] && read -r t1 _ < <(cpu_snap "$pid")
				read -r tps txns aborted < <(pgbench_out "$f")
				if [ "$tps" = 0 ] || [ "$txns" = 0 ]; then
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
