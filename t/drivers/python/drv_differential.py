"""drv_differential.py: the same random session operations on three clients,
run against PostgreSQL directly and through pgdog (t/drivers/run.sh
differential, with pool_size 1: the three share one server connection), must
give the same results: statuses, SQLSTATEs and values.

libpq through psycopg's pq module (python3-psycopg): simple and extended
protocol, named and unnamed statements prepared in one request and run in
another (also an unnamed Parse that fails, and one skipped in a pipeline after
an error), SETs (plain, SESSION, LOCAL, TO DEFAULT, in transactions that commit
or roll back, as named and unnamed statements, SESSION CHARACTERISTICS, TIME
ZONE, client_encoding, output formats, in multi-statement queries, in a Query
holding two transactions, standard_conforming_strings with a backslash in a
string), RESET [ALL], DISCARD ALL, savepoints (rolled back to, released, after
errors), COMMIT/ROLLBACK AND CHAIN, cursors, errors, SQL DEALLOCATE of
protocol-level statements (also in an aborted transaction, and through the
extended protocol) and pipelines whose first request fails. A client that is
in a transaction keeps the turn until it leaves it (the one server is its own
then); so does one whose server pgdog may have pinned (a ROLLBACK TO or chain
in a transaction, a Query with two transactions), until it has run DISCARD
ALL on both sides; so does one that made state that pins (temporary table,
advisory lock, WITH HOLD cursor, LISTEN, and SQL PREPARE unless
PGDOG_TEST_PREPARED is full, where pgdog rewrites SQL PREPARE, EXECUTE and
DEALLOCATE: also through the extended protocol, refused at Bind, and after
the client's turn on the one server ended). Notifications each client got
(LISTEN and NOTIFY in one Query too; with PGDOG_TEST_PUBSUB, a named LISTEN
and a NOTIFY in one pipeline too) must match as well; with
PGDOG_TEST_PUBSUB (pub_sub_channel_size > 0), where pgdog's listener
connection serves LISTEN and nothing pins, they must be there when the
command that committed them returns, as PostgreSQL sends its own
notifications before its ReadyForQuery. Seeds are fixed: a
failure names the seed, step, client and operation, after that client's last
operations.
Environment: DIFF_SEEDS (12), DIFF_STEPS (500 per seed), DIFF_SECONDS (60).
"""
import os
import random
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import drvlib  # noqa: E402
from psycopg import pq  # noqa: E402

CLIENTS = 3
SEEDS = int(os.environ.get("DIFF_SEEDS", "12"))
STEPS = int(os.environ.get("DIFF_STEPS", "500"))
SECONDS = float(os.environ.get("DIFF_SECONDS", "60"))
PG_PORT = os.environ.get("PGDOG_TEST_PG_PORT", "5432")
FULL = os.environ.get("PGDOG_TEST_PREPARED") == "full"
PUBSUB = int(os.environ.get("PGDOG_TEST_PUBSUB") or "0") > 0
NOTES = {}


def connect(port, db, user, password):
    c = pq.PGconn.connect(("host=%s port=%s user=%s password=%s dbname=%s connect_timeout=10"
                           % (drvlib.HOST, port, user, password, db)).encode())
    if c.status != pq.ConnStatus.OK:
        raise drvlib.CheckFailed("connect to port %s: %s" % (port, c.error_message.decode()))
    return c


def outcome(r):
    if r.status == pq.ExecStatus.FATAL_ERROR:
        return ("error", (r.error_field(pq.DiagnosticField.SQLSTATE) or r.error_message[:150]).decode())
    if r.status == pq.ExecStatus.TUPLES_OK:
        return ("rows", tuple(r.get_value(i, 0) for i in range(r.ntuples)))
    return ("command", (r.command_status or b"").decode())


def operations(n):
    """Every operation a step may run (n: a small number that varies the text)."""
    iso = ["SERIALIZABLE", "READ COMMITTED", "REPEATABLE READ"][n % 3]
    return [
        ("q", "SET work_mem = '%dMB'" % (n + 1)),
        ("q", "SHOW work_mem"),
        ("q", "SET search_path = s%d, public" % n),
        ("q", "SHOW search_path"),
        ("q", "SHOW transaction_isolation"),
        ("q", "SHOW application_name"),
        ("q", "SET application_name = 'a%d'" % n),
        ("q", "BEGIN"), ("q", "COMMIT"), ("q", "ROLLBACK"),
        ("q", "SELECT 1/0"),
        ("q", "RESET ALL"), ("q", "RESET work_mem"),
        ("q", "SET LOCAL work_mem = '9MB'"),
        ("q", "SAVEPOINT sp"), ("q", "ROLLBACK TO sp"), ("q", "RELEASE sp"),
        ("q", "SET SESSION CHARACTERISTICS AS TRANSACTION ISOLATION LEVEL " + iso),
        ("q", "SET SESSION CHARACTERISTICS AS TRANSACTION READ %s" % ["ONLY", "WRITE"][n % 2]),
        ("q", "SHOW default_transaction_read_only"),
        ("q", "DEALLOCATE p%d" % n),
        ("q", "DEALLOCATE ALL"),
        ("q", "SELECT %d; SET work_mem = '%dMB'; SHOW work_mem" % (n, n + 5)),
        ("prepare", "p%d" % n, "SELECT $1::int + %d" % (n * 10)),
        ("execute", "p%d" % n),
        ("describe", "p%d" % n),
        ("prepare", "", "SELECT $1::int + %d" % (n * 100)),
        ("execute", ""),
        ("describe", ""),
        ("prepare", "ps%d" % n, "SET work_mem = '%dMB'" % (n + 11)),
        ("execute0", "ps%d" % n),
        ("params", "SELECT $1::int * 3"),
        ("params", "SET statement_timeout = '%ds'" % (n + 1)),
        ("q", "SHOW statement_timeout"),
        ("pipeline",),
        ("q", "DISCARD ALL"),
        ("q", "SET TIME ZONE 'Europe/Paris'"), ("q", "SHOW TimeZone"),
        ("q", "SET datestyle = 'German, DMY'"), ("q", "SELECT '2024-03-05'::date::text"),
        ("q", "SET SESSION work_mem = '%dMB'" % (n + 20)),
        ("q", "BEGIN ISOLATION LEVEL REPEATABLE READ"),
        ("q", "SET TRANSACTION ISOLATION LEVEL SERIALIZABLE"),
        ("q", "SELECT set_config('work_mem', '%dMB', true)" % (n + 30)),
        ("q", "SET standard_conforming_strings = %s" % ["on", "off"][n % 2]),
        ("q", r"SELECT 'a\'; SET work_mem = ''1MB''; SELECT ''x' AS v"),
        ("params", "DEALLOCATE p%d" % n),
        ("q", "RESET ALL; SET application_name = 'r%d'" % n),
        ("q", "SELECT current_setting('search_path'), %d" % n),
        ("prepare", "pr%d" % n, "RESET work_mem"),
        ("execute0", "pr%d" % n),
        ("prepare", "", "SET work_mem = '%dMB'" % (n + 40)),
        ("execute0", ""),
        ("prepare", "", "SELEC bad %d" % n),
        ("q", "DECLARE cur CURSOR FOR SELECT generate_series(1, 3)"),
        ("q", "FETCH 1 FROM cur"), ("q", "CLOSE cur"),
        ("q", "COMMIT AND CHAIN"), ("q", "ROLLBACK AND CHAIN"),
        ("q", "START TRANSACTION READ ONLY"), ("q", "END"), ("q", "ABORT"),
        ("q", "SHOW transaction_read_only"),
        ("q", "SET LOCAL search_path = l%d" % n),
        ("q", "SET work_mem TO DEFAULT"), ("q", "SET SESSION work_mem TO DEFAULT"),
        ("q", "SET work_mem = '2MB'; SELECT 1/0"),
        ("q", "BEGIN; SET work_mem = '%dMB'; COMMIT" % (n + 50)),
        ("q", "BEGIN; SET work_mem = '%dMB'; ROLLBACK" % (n + 60)),
        ("q", "BEGIN; SET work_mem = '%dMB'; COMMIT; BEGIN; SET work_mem = '1MB'; ROLLBACK" % (n + 90)),
        ("q", "SAVEPOINT sp2"), ("q", "ROLLBACK TO sp2"), ("q", "RELEASE sp2"),
        ("q", "SELECT 1; " * 18 + "SET work_mem = '%dMB'" % (n + 70)),
        ("q", "SET client_encoding = '%s'" % ["LATIN1", "UTF8"][n % 2]), ("q", "SHOW client_encoding"),
        ("q", "SET extra_float_digits = %d" % (n - 1)), ("q", "SELECT 0.1::float8::text"),
        ("q", "SET intervalstyle = '%s'" % ["iso_8601", "postgres"][n % 2]), ("q", "SELECT '1 day'::interval::text"),
        ("q", "SET bytea_output = '%s'" % ["escape", "hex"][n % 2]), ("q", "SELECT 'ab'::bytea::text"),
        ("q", "SET TRANSACTION READ ONLY"),
        ("pipe2",),
        ("q", "SET SESSION CHARACTERISTICS AS TRANSACTION DEFERRABLE"),
        ("q", "SHOW default_transaction_deferrable"),
        ("q", "SET LOCAL TIME ZONE 'Asia/Tokyo'"),
        ("q", "SELECT current_setting('TimeZone')"),
        ("q", "RESET TIME ZONE"),
        ("params", "SHOW work_mem"),
        ("params", "SET LOCAL work_mem = '%dMB'" % (n + 80)),
        ("params", "BEGIN"), ("params", "COMMIT"),
        ("params", "SELECT 1/0"),
        ("q", "PREPARE q%d AS SELECT $1::int + %d" % (n, n * 7)),
        ("q", "EXECUTE q%d(%d)" % (n, n)), ("params", "EXECUTE q%d(2)" % n),
        ("q", "DEALLOCATE q%d" % n), ("q", "DEALLOCATE PREPARE q%d" % n),
        ("params", "PREPARE q%d AS SELECT $1::int * 2" % n),
        ("params", "PREPARE q%d AS SELECT 2" % n),
        ("q", "PREPARE q%d(int) AS SELECT $1 - 1; EXECUTE q%d(9)" % (n, n)),
        ("q", "EXECUTE q%d(1); SELECT 1/0" % n),
        ("q", "CREATE TEMP TABLE IF NOT EXISTS tt%d(a int)" % n),
        ("q", "SELECT count(*) FROM tt%d" % n),
        ("q", "SELECT pg_try_advisory_lock({k} + %d)" % n),
        ("q", "SELECT pg_advisory_unlock({k} + %d)" % n),
        ("q", "SELECT pg_try_advisory_xact_lock({k} + %d)" % n),
        ("q", "DECLARE hc%d CURSOR WITH HOLD FOR SELECT 1" % n), ("q", "CLOSE hc%d" % n),
        ("q", "LISTEN {s}ch%d" % n), ("q", "UNLISTEN *"),
        ("q", "NOTIFY {s}ch%d, 'x%d'" % (n, n)),
        ("q", "LISTEN {s}ch%d; NOTIFY {s}ch%d, 'z'" % (n, n)),
        ("q", "UNLISTEN {s}ch%d" % n), ("params", "LISTEN {s}ch%d" % n),
        ("params", "NOTIFY {s}ch%d, 'w'" % n),
        ("params", "SELECT pg_notify('{s}ch%d', 'y')" % n),
    ] + ([("pipel", "pl%d" % n, "{s}ch%d" % n)] if PUBSUB else [])


def run(c, op, side="d"):
    # {s}: a channel name, {k}: an advisory lock key of one side (both share one database)
    op = tuple(x.replace("{s}", side).replace("{k}", "1000" if side == "p" else "0") for x in op)
    kind = op[0]
    if kind == "q":
        return [outcome(c.exec_(op[1].encode()))]
    if kind == "prepare":
        return [outcome(c.prepare(op[1].encode(), op[2].encode()))]
    if kind == "execute":
        return [outcome(c.exec_prepared(op[1].encode(), [b"5"]))]
    if kind == "execute0":
        return [outcome(c.exec_prepared(op[1].encode(), []))]
    if kind == "describe":
        r = c.describe_prepared(op[1].encode())
        return [outcome(r), r.nparams if r.status == pq.ExecStatus.COMMAND_OK else None]
    if kind == "params":
        return [outcome(c.exec_params(op[1].encode(), [b"7"] if "$1" in op[1] else []))]
    if kind == "pipe2":
        # the unnamed statement: parsed and run, a failing query's parsed, one more
        # parsed but skipped after the error; the next request runs the failing one's
        c.enter_pipeline_mode()
        c.send_prepare(b"", b"SELECT $1::int - 1", None)
        c.send_query_prepared(b"", [b"4"], None)
        c.send_query_params(b"SELECT 1/0", None)
        c.send_prepare(b"", b"SELECT $1::int - 2", None)
        c.pipeline_sync()
        c.send_query_prepared(b"", [b"4"], None)
        c.pipeline_sync()
        return drain(c, 2)
    if kind == "pipel":
        # a LISTEN prepared as a named statement, then run with a NOTIFY of its channel in
        # one request (one implicit transaction)
        out = [outcome(c.prepare(op[1].encode(), ("LISTEN " + op[2]).encode()))]
        c.enter_pipeline_mode()
        c.send_query_prepared(op[1].encode(), [], None)
        c.send_query_params(("NOTIFY %s, 'l'" % op[2]).encode(), None)
        c.pipeline_sync()
        return out + drain(c, 1)
    # a pipeline of two requests: the first fails after its SET, the second reads it
    c.enter_pipeline_mode()
    c.send_query_params(b"SET work_mem = '13MB'", None)
    c.send_query_params(b"SELECT 1/0", None)
    c.pipeline_sync()
    c.send_query_params(b"SHOW work_mem", None)
    c.pipeline_sync()
    return drain(c, 2)


def drain(c, n):
    """The results of a pipeline of n requests ("sync" for each end), out of pipeline mode."""
    out, syncs, deadline = [], 0, time.monotonic() + 10
    while syncs < n:
        if time.monotonic() > deadline:
            raise drvlib.CheckFailed("pipeline: no reply within 10 s")
        c.consume_input()
        r = c.get_result()
        if r is None:
            continue
        if r.status == pq.ExecStatus.PIPELINE_SYNC:
            syncs += 1
        out.append(outcome(r) if r.status != pq.ExecStatus.PIPELINE_SYNC else "sync")
    c.exit_pipeline_mode()
    return out


def take(side, c, i):
    """Add what libpq has read of client i's notifications on side d or p to NOTES."""
    n = c.notifies()
    while n is not None:
        NOTES.setdefault((side, i), []).append((n.relname.decode()[1:], n.extra.decode()))
        n = c.notifies()


def notes_differ(hist, step, i, when):
    for h in [x for x in hist if x[1] == i][-14:]:
        print("   #", h)
    raise drvlib.CheckFailed("step %d, client %d, notifications%s: PostgreSQL %r, pgdog %r"
                             % (step, i, when, NOTES.get(("d", i)), NOTES.get(("p", i))))


def own_notes(direct, pooled, hist, step, i):
    """Client i's notifications are the same on both sides already, nothing more read."""
    take("d", direct[i], i)
    take("p", pooled[i], i)
    if NOTES.get(("d", i)) != NOTES.get(("p", i)):
        notes_differ(hist, step, i, " when the command returned")


def notes(direct, pooled, hist, step):
    """The notifications each idle client got so far: the same on both sides (within 2 s)."""
    deadline = time.monotonic() + 2
    while True:
        bad = []
        for i in range(CLIENTS):
            for side, c in (("d", direct[i]), ("p", pooled[i])):
                c.consume_input()
                take(side, c, i)
            if direct[i].transaction_status == pq.TransactionStatus.IDLE and \
                    NOTES.get(("d", i)) != NOTES.get(("p", i)):
                bad.append(i)
        if not bad:
            return
        if time.monotonic() > deadline:
            notes_differ(hist, step, bad[0], "")
        time.sleep(0.02)


def may_pin(op, in_tx):
    """May op pin the pooled client's server (state pgdog cannot move or settle)?"""
    text = " ".join(op[1:])
    if "ROLLBACK TO" in text or "AND CHAIN" in text:
        return in_tx
    if any(w in text for w in ("TEMP", "advisory_lock(", "WITH HOLD")):
        return True
    if "LISTEN" in text and not PUBSUB:
        return True  # the server LISTENs unless pgdog's listener serves it
    if "PREPARE q" in text and not FULL:
        return True  # SQL PREPARE pins unless prepared_statements = full
    return text.count("COMMIT") + text.count("ROLLBACK") > 1


def one_seed(seed, end):
    rnd = random.Random(seed)
    NOTES.clear()
    # directly as "postgres": run.sh counts the server connections of "app" against pool_size
    direct = [connect(PG_PORT, "postgres", "postgres", "") for _ in range(CLIENTS)]
    pooled = [connect(drvlib.PORT, drvlib.DB, drvlib.USER, drvlib.PASSWORD) for _ in range(CLIENTS)]
    try:
        turn = None
        hist = []
        pinned = [False] * CLIENTS
        # the client's unnamed statement is one pgdog answered itself (a LISTEN/UNLISTEN with
        # pub/sub, a DEALLOCATE of a protocol-level statement), which pgdog does not bind or
        # describe again without its Parse (README, "Current limitations"): not tried
        served = [False] * CLIENTS
        for step in range(STEPS):
            if time.monotonic() > end:
                break
            if turn is not None and pinned[turn] and \
                    direct[turn].transaction_status == pq.TransactionStatus.IDLE:
                op = ("q", "DISCARD ALL")
                want, got = run(direct[turn], op), run(pooled[turn], op, "p")
                notes(direct, pooled, hist, step)
                hist.append((step, turn, op, want))
                pinned[turn] = False
                if want != got:
                    raise drvlib.CheckFailed("step %d, client %d, %r: PostgreSQL %r, pgdog %r"
                                             % (step, turn, op, want, got))
            if turn is None or direct[turn].transaction_status == pq.TransactionStatus.IDLE:
                turn = rnd.randrange(CLIENTS)
            ops = operations(rnd.randrange(4))
            op = ops[rnd.randrange(len(ops))]
            while served[turn] and op[0] in ("execute", "execute0", "describe") and op[1] == "":
                op = ops[rnd.randrange(len(ops))]
            in_tx = direct[turn].transaction_status != pq.TransactionStatus.IDLE
            want, got = run(direct[turn], op), run(pooled[turn], op, "p")
            if op[0] in ("q", "params") or op[:2] == ("prepare", ""):
                served[turn] = op[0] == "params" and (
                    PUBSUB and "LISTEN" in op[1] or
                    op[1].startswith("DEALLOCATE") and want == [("command", "DEALLOCATE")])
            if PUBSUB and direct[turn].transaction_status == pq.TransactionStatus.IDLE:
                own_notes(direct, pooled, hist + [(step, turn, op, want)], step, turn)
            notes(direct, pooled, hist, step)
            if may_pin(op, in_tx):
                pinned[turn] = True
            hist.append((step, turn, op, want))
            if want != got:
                for h in [x for x in hist if x[1] == turn][-14:]:
                    print("   #", h)
                raise drvlib.CheckFailed("step %d, client %d, %r: PostgreSQL %r, pgdog %r"
                                         % (step, turn, op, want, got))
    finally:
        for c in direct + pooled:
            c.finish()


def main():
    r = drvlib.Runner()
    end = time.monotonic() + SECONDS
    for seed in range(1, SEEDS + 1):
        r.check("seed %d: %d random steps on 3 clients, as on PostgreSQL" % (seed, STEPS),
                lambda: one_seed(seed, end))
        if time.monotonic() > end:
            # a seed cut short is not a pass: say so
            r.check("all %d seeds within %g s" % (SEEDS, SECONDS), lambda: drvlib.expect(
                False, "stopped after seed %d" % seed))
            break
    r.done()


main()
