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
# shellcheck source=t/bench/lib.sh
. "$(dirname "$0")/lib.sh"

BENCH=t/bench/txn.sh
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
check_pg_tools
direct_first # direct first, always: it is the reference
PROXIES=${TARGETS#direct}

if want pgdog-w1 || want pgdog-w2; then
	find_pgdog || die "no pgdog binary (build it, or set PGDOG_BIN, or TARGETS=\"direct pgbouncer\")"
fi
PGB_PREPARED=0 # can PgBouncer run -M prepared in transaction mode? (1.21+)
if want pgbouncer; then
	[ -x "$PGBOUNCER" ] || die "no $PGBOUNCER: apt-get install -y pgbouncer"
	pgbouncer_prepared
fi

check_ports "PG_PORT, PGDOG_W1_PORT, ..." "$PG_PORT" "$PGDOG_W1_PORT" "$PGDOG_W2_PORT" "$PGBOUNCER_PORT"

OUT=${OUT:-$(mktemp -d /tmp/pgdog-txn-bench.XXXXXX)}
make_out
set_traps

pg_setup 500 256MB "$PG_CPUS"

declare -A PORT_OF=([direct]=$PG_PORT [pgdog-w1]=$PGDOG_W1_PORT [pgdog-w2]=$PGDOG_W2_PORT
	[pgbouncer]=$PGBOUNCER_PORT)
PGDOG_TXN=("pooler_mode = transaction" "prepared_statements = extended")
want pgdog-w1 && start_pgdog pgdog-w1 "$PGDOG_W1_PORT" 1 "${PGDOG_TXN[@]}"
want pgdog-w2 && start_pgdog pgdog-w2 "$PGDOG_W2_PORT" 2 "${PGDOG_TXN[@]}"
pgb_extra=
[ "$PGB_PREPARED" = 1 ] && pgb_extra="max_prepared_statements = 100"
want pgbouncer && start_pgbouncer transaction 500 "$pgb_extra"

# every target answers before we measure
probe_targets

# --- helpers ----------------------------------------------------------------------------------
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
