#!/usr/bin/env bash
# t/drivers/run.sh DRIVER: run one real-driver suite through pgdog.
#
#   DRIVER: psycopg2, psycopg, asyncpg, node, jdbc or ruby; or differential (the same
#   random operations through pgdog and on PostgreSQL directly, compared).
#
# Starts a throwaway PostgreSQL cluster (t/pgenv.sh) with a SCRAM role "app",
# starts pgdog on a free loopback port with a generated configuration
# (pooler_mode from PGDOG_TEST_POOLER_MODE, default transaction), runs the
# driver program and prints one Check-style line that .ci/run counts:
#   100%: Checks: N, Failures: F, Errors: E
# Driver programs print "ok - NAME" or "not ok - NAME: MESSAGE" per check and
# "done" at the end; a program that stops without "done" (crash, timeout)
# counts as one error. run.sh adds two checks of its own: PostgreSQL never saw
# more server connections of "app" than pool_size (pub/sub listeners, outside
# it, aside), and pgdog still serves after the driver. Exit 0: all passed; 1: a
# failure; 77 (automake's SKIP):
# the driver or the pooler mode is not available here.
#
# Environment: PGDOG_BIN, PGDOG_SRCDIR, PGDOG_BUILDDIR (set by make check),
# PGDOG_TEST_WORKERS (2), PGDOG_TEST_POOLER_MODE (transaction), PGDOG_TEST_POOL_SIZE (3; 12 in
# session mode, where every open client holds a server), PGDOG_TEST_PREPARED
# (prepared_statements; pgdog's default when unset), PGDOG_TEST_PUBSUB
# (pub_sub_channel_size; pgdog's default when unset), DRV_TIMEOUT (90 s
# for the driver program), DRV_KEEP (keep the work directory), DRV_DIRECT
# (the driver connects to PostgreSQL directly: checks the suite itself).
set -u
export PYTHONDONTWRITEBYTECODE=1

DRIVER=${1:-}
[ -n "$DRIVER" ] || {
	echo "usage: run.sh DRIVER" >&2
	exit 2
}
SRCDIR=${PGDOG_SRCDIR:-$(cd "$(dirname "$0")/../.." && pwd)}
BUILDDIR=${PGDOG_BUILDDIR:-$PWD}
BIN=${PGDOG_BIN:-$BUILDDIR/pgdog}
MODE=${PGDOG_TEST_POOLER_MODE:-transaction}
DRV=$SRCDIR/t/drivers
DRV_TIMEOUT=${DRV_TIMEOUT:-90}
if [ -n "${PGDOG_TEST_POOL_SIZE:-}" ]; then
	POOL=$PGDOG_TEST_POOL_SIZE
elif [ "$MODE" = session ]; then
	POOL=12 # the suites keep up to 11 clients open at once
else
	POOL=3
fi

WORK=
PGDOG_PID=
DRV_PID=
MON_PID=
PG_PORT=
PORT=

skip() {
	echo "SKIP: $DRIVER: $*"
	exit 77
}

cleanup() {
	local i
	for pid in $DRV_PID $MON_PID; do
		kill -TERM "$pid" 2>/dev/null && wait "$pid" 2>/dev/null
	done
	if [ -n "$PGDOG_PID" ] && kill -0 "$PGDOG_PID" 2>/dev/null; then
		kill -TERM "$PGDOG_PID" 2>/dev/null
		for i in $(seq 50); do
			kill -0 "$PGDOG_PID" 2>/dev/null || break
			sleep 0.1
		done
		kill -KILL "$PGDOG_PID" 2>/dev/null
		wait "$PGDOG_PID" 2>/dev/null
	fi
	if [ -n "$WORK" ] && [ -d "$WORK" ]; then
		sh "$SRCDIR/t/pgenv.sh" stop "$WORK/pg" >/dev/null 2>&1
		[ -n "${DRV_KEEP:-}" ] || rm -rf "$WORK"
	fi
}
trap cleanup EXIT
trap 'exit 1' INT TERM HUP

# --- the driver -----------------------------------------------------------------------
# find_python MODULE: the first python3 that imports MODULE
find_python() {
	local py
	for py in /usr/bin/python3 python3; do
		if command -v "$py" >/dev/null 2>&1 && "$py" -c "import $1" >/dev/null 2>&1; then
			echo "$py"
			return 0
		fi
	done
	return 1
}

CMD=()
case $DRIVER in
psycopg2 | psycopg | asyncpg)
	PY=$(find_python "$DRIVER") || skip "python3 module $DRIVER not found (Debian: python3-$DRIVER)"
	CMD=("$PY" "$DRV/python/drv_$DRIVER.py")
	;;
differential)
	PY=$(find_python psycopg) || skip "python3 module psycopg not found (Debian: python3-psycopg)"
	CMD=("$PY" "$DRV/python/drv_differential.py")
	;;
node)
	command -v node >/dev/null 2>&1 || skip "node not found (Debian: nodejs)"
	NODEDIR=$DRV/node
	if ! (cd "$NODEDIR" && node -e "require('pg')") >/dev/null 2>&1; then
		command -v npm >/dev/null 2>&1 || skip "npm not found to install pg (Debian: npm)"
		# the source tree may be read-only (distcheck): install into the build tree then
		if [ -w "$NODEDIR" ]; then
			PREFIX=$NODEDIR
		else
			PREFIX=$BUILDDIR/t/drivers/node
			mkdir -p "$PREFIX"
		fi
		timeout -k 5 120 npm install --prefix "$PREFIX" --no-save --no-audit --no-fund \
			--loglevel=error pg@8 >"$BUILDDIR/npm-install-$$.log" 2>&1 || {
			cat "$BUILDDIR/npm-install-$$.log"
			rm -f "$BUILDDIR/npm-install-$$.log"
			skip "npm install pg@8 failed (no registry?)"
		}
		rm -f "$BUILDDIR/npm-install-$$.log"
		export NODE_PATH=$PREFIX/node_modules
	fi
	CMD=(node "$NODEDIR/drv_node.js")
	;;
jdbc)
	JAR=${PGJDBC_JAR:-/usr/share/java/postgresql.jar}
	[ -r "$JAR" ] || skip "$JAR not found (Debian: libpostgresql-jdbc-java)"
	command -v javac >/dev/null 2>&1 || skip "javac not found (Debian: default-jdk-headless)"
	command -v java >/dev/null 2>&1 || skip "java not found (Debian: default-jdk-headless)"
	;;
ruby)
	command -v ruby >/dev/null 2>&1 || skip "ruby not found (Debian: ruby-pg)"
	ruby -e 'require "pg"' >/dev/null 2>&1 || skip "ruby gem pg not found (Debian: ruby-pg)"
	CMD=(ruby "$DRV/ruby/drv_ruby.rb")
	;;
*)
	echo "run.sh: unknown driver '$DRIVER'" >&2
	exit 2
	;;
esac
[ -x "$BIN" ] || {
	echo "run.sh: pgdog binary $BIN is missing (set PGDOG_BIN)"
	echo "0%: Checks: 1, Failures: 0, Errors: 1"
	exit 1
}

TMP=${TMPDIR:-/tmp}
WORK=$(mktemp -d "$TMP/pgdog-drv-$DRIVER-XXXXXX") || exit 1
chmod 0755 "$WORK"
[ "$(id -u)" = 0 ] && chmod o+rx "$TMP" 2>/dev/null

if [ "$DRIVER" = jdbc ]; then
	mkdir -p "$WORK/classes"
	javac -d "$WORK/classes" -cp "$JAR" "$DRV/jdbc/DrvJdbc.java" >"$WORK/javac.out" 2>&1 || {
		cat "$WORK/javac.out"
		echo "not ok - compile DrvJdbc.java"
		echo "0%: Checks: 1, Failures: 1, Errors: 0"
		exit 1
	}
	CMD=(java -cp "$WORK/classes:$JAR" DrvJdbc)
fi

fail_setup() {
	echo "run.sh: $*"
	echo "0%: Checks: 1, Failures: 0, Errors: 1"
	exit 1
}

PORT_DIR=/tmp/pgdog-test-ports
# free_port VAR: a port in 20000..29999 (below Linux's ephemeral range) that nobody listens
# on, locked for as long as this shell lives, into VAR. t/lib/it.c and t/fuzz/pgdiff.py lock
# the same files, so parallel suites never pick the same port.
free_port() {
	local p i fd
	mkdir -p "$PORT_DIR" 2>/dev/null && chmod 1777 "$PORT_DIR" 2>/dev/null
	for i in $(seq 10000); do
		p=$((20000 + (RANDOM * 32768 + RANDOM) % 10000))
		exec {fd}>>"$PORT_DIR/$p.lock" || continue
		if flock -n "$fd" && ! port_accepts "$p"; then
			printf -v "$1" '%s' "$p"
			return 0
		fi
		exec {fd}>&-
	done
	fail_setup "no free port in 20000..29999"
}

port_accepts() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

psql_pg() { sh "$SRCDIR/t/pgenv.sh" psql "$WORK/pg" "$PG_PORT" -q -A -t "$@"; }

# --- PostgreSQL -----------------------------------------------------------------------
for attempt in 1 2 3; do
	free_port PG_PORT
	sh "$SRCDIR/t/pgenv.sh" start "$WORK/pg" "$PG_PORT" >"$WORK/pgenv.out" 2>&1 && break
	sh "$SRCDIR/t/pgenv.sh" stop "$WORK/pg" >/dev/null 2>&1
	PG_PORT=
done
[ -n "$PG_PORT" ] || {
	cat "$WORK/pgenv.out"
	fail_setup "t/pgenv.sh start failed"
}
psql_pg -c "SET password_encryption = 'scram-sha-256'" \
	-c "CREATE ROLE app LOGIN PASSWORD 'app_pw'" \
	-c "GRANT ALL ON SCHEMA public TO app" >"$WORK/psql.out" 2>&1 || {
	cat "$WORK/psql.out"
	fail_setup "creating role app failed"
}
printf '%s\n' "local all all trust" "host all postgres 127.0.0.1/32 trust" \
	"host all app 127.0.0.1/32 scram-sha-256" "host all all 127.0.0.1/32 trust" \
	>"$WORK/pg/data/pg_hba.conf"
psql_pg -c "SELECT pg_reload_conf()" >/dev/null 2>&1 || fail_setup "pg_reload_conf failed"
sleep 0.3

# --- pgdog ----------------------------------------------------------------------------
write_config() {
	cat >"$WORK/pgdog.ini" <<EOF
; generated by t/drivers/run.sh for $DRIVER
[general]
host = 127.0.0.1
port = $PORT
workers = ${PGDOG_TEST_WORKERS:-2}
default_pool_size = $POOL
min_pool_size = 0
unix_socket_dir = $WORK
auth_type = scram-sha-256
checkout_timeout = 20000
connect_timeout = 5000
server_reset_query = DISCARD ALL
log_level = ${IT_LOG_LEVEL:-info}
pooler_mode = $MODE
${PGDOG_TEST_PREPARED:+prepared_statements = $PGDOG_TEST_PREPARED}
${PGDOG_TEST_PUBSUB:+pub_sub_channel_size = $PGDOG_TEST_PUBSUB}

[databases.app]
host = 127.0.0.1
port = $PG_PORT
database_name = postgres
EOF
	cat >"$WORK/users.ini" <<EOF
; generated by t/drivers/run.sh for $DRIVER
[users.app]
database = app
password = app_pw
pool_size = $POOL

[admin]
name = admin
user = admin
password = pgdog
EOF
}

free_port PORT
write_config
if ! "$BIN" -c "$WORK/pgdog.ini" -u "$WORK/users.ini" --check-config >"$WORK/check.out" 2>&1; then
	cat "$WORK/check.out"
	if [ "$MODE" != session ] && grep -q "pooler_mode" "$WORK/check.out"; then
		skip "this pgdog does not accept pooler_mode = $MODE (PGDOG_TEST_POOLER_MODE)"
	fi
	fail_setup "pgdog rejects the generated configuration"
fi
for attempt in 1 2 3; do
	[ "$attempt" = 1 ] || {
		free_port PORT
		write_config
	}
	"$BIN" -c "$WORK/pgdog.ini" -u "$WORK/users.ini" >>"$WORK/pgdog.log" 2>&1 </dev/null &
	PGDOG_PID=$!
	up=0
	for i in $(seq 100); do
		kill -0 "$PGDOG_PID" 2>/dev/null || break
		if port_accepts "$PORT"; then
			up=1
			break
		fi
		sleep 0.1
	done
	[ "$up" = 1 ] && break
	kill -TERM "$PGDOG_PID" 2>/dev/null
	wait "$PGDOG_PID" 2>/dev/null
	PGDOG_PID=
done
[ -n "$PGDOG_PID" ] || {
	cat "$WORK/pgdog.log"
	fail_setup "pgdog did not start"
}

# --- monitor: the most server connections of "app" PostgreSQL ever had ----------------
(
	max=0
	while :; do
		n=$(psql_pg -c "SELECT count(*) FROM pg_stat_activity WHERE usename = 'app' AND backend_type = 'client backend' AND application_name <> 'pgdog_listener'" 2>/dev/null)
		if [ -n "$n" ] && [ "$n" -gt "$max" ]; then
			max=$n
			echo "$max" >"$WORK/max_backends"
		fi
		sleep 0.2
	done
) &
MON_PID=$!

# --- the driver program ---------------------------------------------------------------
echo "run.sh: $DRIVER, pooler_mode = $MODE, pool_size = $POOL, pgdog port $PORT, PostgreSQL port $PG_PORT"
export PGDOG_TEST_HOST=127.0.0.1 PGDOG_TEST_PORT=$PORT PGDOG_TEST_PG_PORT=$PG_PORT \
	PGDOG_TEST_USER=app PGDOG_TEST_PASSWORD=app_pw PGDOG_TEST_DB=app \
	PGDOG_TEST_POOL_SIZE=$POOL PGDOG_TEST_POOLER_MODE=$MODE
# DRV_DIRECT=1: the driver talks to PostgreSQL itself (to check the suite, not pgdog)
[ -n "${DRV_DIRECT:-}" ] && PGDOG_TEST_PORT=$PG_PORT PGDOG_TEST_DB=postgres
T0=$(date +%s)
timeout -k 5 "$DRV_TIMEOUT" "${CMD[@]}" >"$WORK/driver.out" 2>&1 </dev/null &
DRV_PID=$!
wait "$DRV_PID"
DRV_RC=$?
DRV_PID=
kill -TERM "$MON_PID" 2>/dev/null
wait "$MON_PID" 2>/dev/null
MON_PID=
cat "$WORK/driver.out"
echo "run.sh: the driver program exited with status $DRV_RC after $(($(date +%s) - T0)) s"

OK=$(grep -c '^ok - ' "$WORK/driver.out")
NOK=$(grep -c '^not ok - ' "$WORK/driver.out")
ERR=0
if ! grep -qx 'done' "$WORK/driver.out"; then
	ERR=1
	[ "$DRV_RC" = 124 ] && echo "run.sh: the driver program was killed after ${DRV_TIMEOUT} s"
	echo "run.sh: the driver program stopped before its end (no 'done' line)"
elif [ "$DRV_RC" != 0 ] && [ "$NOK" = 0 ]; then
	ERR=1
	echo "run.sh: the driver program failed without a failed check"
fi

# run.sh's own checks
max=$(cat "$WORK/max_backends" 2>/dev/null || echo 0)
if [ "$max" -le "$POOL" ]; then
	echo "ok - server connections of app never exceeded pool_size $POOL (most seen: $max)"
	OK=$((OK + 1))
else
	echo "not ok - server connections: PostgreSQL had $max backends of app, pool_size is $POOL"
	NOK=$((NOK + 1))
fi
if kill -0 "$PGDOG_PID" 2>/dev/null &&
	v=$(PGPASSWORD=app_pw PGCONNECT_TIMEOUT=5 timeout 15 psql -X -q -A -t -h 127.0.0.1 -p "$PORT" \
		-U app -d app -c "SELECT 40 + 2" 2>&1) && [ "$v" = 42 ]; then
	echo "ok - pgdog still serves after the driver"
	OK=$((OK + 1))
else
	echo "not ok - pgdog still serves after the driver: ${v:-pgdog exited}"
	NOK=$((NOK + 1))
fi

TOTAL=$((OK + NOK + ERR))
PCT=$(((OK * 100) / (TOTAL > 0 ? TOTAL : 1)))
if [ "$NOK" != 0 ] || [ "$ERR" != 0 ] || grep -qE 'Sanitizer|runtime error:' "$WORK/pgdog.log"; then
	echo "---- pgdog log (last 60 lines) ----"
	tail -n 60 "$WORK/pgdog.log"
	echo "---- end of pgdog log ----"
fi
if grep -qE 'Sanitizer|runtime error:' "$WORK/pgdog.log"; then
	echo "not ok - pgdog reported a sanitizer error (see its log above)"
	NOK=$((NOK + 1))
	TOTAL=$((TOTAL + 1))
	PCT=$(((OK * 100) / TOTAL))
fi
echo "${PCT}%: Checks: $TOTAL, Failures: $NOK, Errors: $ERR"
[ "$NOK" = 0 ] && [ "$ERR" = 0 ]
