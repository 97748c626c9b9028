#!/usr/bin/env bash
# t/bench/idle.sh: 10,000 idle clients on a pool of 10 servers (transaction mode).
#
#   t/bench/idle.sh                        (as root or a user with ulimit -Hn >= CLIENTS+1024)
#   BUILD=/tmp/build CLIENTS=10000 SCRAM_CLIENTS=10000 t/bench/idle.sh
#
# Runs the integration program t/integration/it_idle from a configured build tree with
# IT_IDLE_STRICT=1 IT_IDLE_CLIENTS=$CLIENTS. That program, on 127.0.0.1 only:
#   - starts a throwaway PostgreSQL cluster (t/pgenv.sh) and pgdog (2 workers,
#     pooler_mode = transaction, auth_type = trust, user "bench" with pool_size 10,
#     max_client_conn = CLIENTS + 1000), raising RLIMIT_NOFILE first so that pgdog inherits it;
#   - in ROUNDS rounds: a 10-client `pgbench -n -S -T BENCH_SECONDS` without idle clients, then
#     CLIENTS logins over non-blocking libpq (256 in flight), the same pgbench with them
#     connected, then disconnects them (the last round keeps them and sends each a SELECT 1);
#   - measures the summed Pss (/proc/PID/smaps_rollup) of pgdog's supervisor and workers
#     before and after the first CLIENTS logins;
#   - then, against a second pgdog with auth_type = scram-sha-256, times SCRAM_CLIENTS
#     SCRAM-SHA-256 logins (libpq computes PBKDF2 with 4096 iterations per login too).
# and prints "it_idle: ..." lines, summarised below. Every process it starts is stopped
# by PID when it ends (also on failure); the whole run is killed after TIMEOUT seconds.
#
# Environment (defaults):
#   BUILD=.            build tree with t/integration/it_idle (make t/integration/it_idle)
#   CLIENTS=10000 SCRAM_CLIENTS=10000 ROUNDS=3 BENCH_SECONDS=5 TIMEOUT=1200
#   PG_BINDIR, PGBENCH  as for the integration tests
set -euo pipefail

SRCDIR=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
BUILD=${BUILD:-.}
CLIENTS=${CLIENTS:-10000}
SCRAM_CLIENTS=${SCRAM_CLIENTS:-10000}
ROUNDS=${ROUNDS:-3}
BENCH_SECONDS=${BENCH_SECONDS:-5}
TIMEOUT=${TIMEOUT:-1200}

die() {
	echo "idle.sh: $*" >&2
	exit 1
}

BUILD=$(cd "$BUILD" && pwd)
PROG=$BUILD/t/integration/it_idle
[ -x "$PROG" ] || die "no $PROG: configure a build tree, run 'make && make t/integration/it_idle' there, set BUILD"
[ -x "$BUILD/pgdog" ] || die "no $BUILD/pgdog"
need=$((CLIENTS > SCRAM_CLIENTS ? CLIENTS : SCRAM_CLIENTS))
need=$((need + 1024))
# raise the soft limit (and the hard one as root); it_idle raises it again with setrlimit
hard=$(ulimit -Hn)
if [ "$hard" != unlimited ] && [ "$hard" -lt "$need" ]; then
	ulimit -Hn "$need" 2>/dev/null || true
fi
ulimit -n "$need" 2>/dev/null || ulimit -n "$(ulimit -Hn)"
[ "$(ulimit -n)" -ge "$need" ] || die "open-file limit $(ulimit -n) < $need (raise ulimit -Hn)"

LOG=$(mktemp /tmp/pgdog-idle.XXXXXX)
echo "idle.sh: $CLIENTS idle clients, $SCRAM_CLIENTS SCRAM logins, $ROUNDS rounds of ${BENCH_SECONDS}s pgbench; log: $LOG" >&2
rc=0
(
	cd "$BUILD/t/integration"
	CK_DEFAULT_TIMEOUT=$TIMEOUT CK_TIMEOUT_MULTIPLIER=4 \
		IT_IDLE_STRICT=1 IT_IDLE_CLIENTS=$CLIENTS IT_IDLE_SCRAM_CLIENTS=$SCRAM_CLIENTS \
		IT_IDLE_ROUNDS=$ROUNDS IT_IDLE_BENCH_SECONDS=$BENCH_SECONDS \
		PGDOG_SRCDIR=$SRCDIR PGDOG_BIN=$BUILD/pgdog \
		timeout -k 10 "$TIMEOUT" "$PROG"
) >"$LOG" 2>&1 || rc=$?

grep '^it_idle:' "$LOG" || true
echo "---- summary"
awk -v n="$CLIENTS" '
/trust logins in/ && !c { c = 1; sub(/^it_idle: round [0-9]+: /, ""); printf "clients connected, time:  %s\n", $0 }
/bytes per client/ { sub(/^it_idle: /, ""); printf "pgdog memory:             %s\n", $0 }
/while .* idle for/ { sub(/^it_idle: /, ""); printf "idle cost:                %s\n", $0 }
/median of/ { sub(/^it_idle: /, ""); printf "pgbench -S -c 10:         %s\n", $0 }
/SCRAM-SHA-256 logins/ { sub(/^it_idle: /, ""); printf "SCRAM:                    %s\n", $0 }
/answered SELECT 1/ { sub(/^it_idle: /, ""); printf "still connected:          %s\n", $0 }
/Checks:/ { printf "checks:                   %s\n", $0 }
/:[FE]:/ { printf "FAILED:                   %s\n", $0 }
' "$LOG"
if [ "$rc" != 0 ]; then
	echo "idle.sh: it_idle exited $rc; pgdog's log lines other than INFO:" >&2
	grep -E ' (WARNING|ERROR|FATAL|LOG|PANIC):' "$LOG" | head -40 >&2 || true
fi
exit "$rc"
