"""drv_differential.py: the same random session operations on three clients,
run against PostgreSQL directly and through pgdog (t/drivers/run.sh
differential, with pool_size 1: the three share one server connection), must
give the same results: statuses, SQLSTATEs and values.

libpq through psycopg's pq module (python3-psycopg): simple and extended
protocol, named and unnamed statements prepared in one request and run in
another, SETs (plain, SESSION, LOCAL, in transactions that commit or roll back, as
named and unnamed statements, SESSION CHARACTERISTICS, TIME ZONE, in
multi-statement queries, standard_conforming_strings with a backslash in a
string), RESET [ALL], DISCARD ALL, savepoints, errors, SQL DEALLOCATE of
protocol-level statements (also in an aborted transaction, and through the
extended protocol) and a pipeline whose second request fails after a SET. A client that is in a
transaction keeps the turn until it leaves it (the one server is its own then).
Seeds are fixed: a failure names the seed, step, client and operation.
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


def connect(port, db, user, password):
    c = pq.PGconn.connect(("host=%s port=%s user=%s password=%s dbname=%s connect_timeout=10"
                           % (drvlib.HOST, port, user, password, db)).encode())
    if c.status != pq.ConnStatus.OK:
        raise drvlib.CheckFailed("connect to port %s: %s" % (port, c.error_message.decode()))
    return c


def outcome(r):
    if r.status == pq.ExecStatus.FATAL_ERROR:
        return ("error", (r.error_field(pq.DiagnosticField.SQLSTATE) or b"").decode())
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
    ]


def run(c, op):
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
    # a pipeline of two requests: the first fails after its SET, the second reads it
    c.enter_pipeline_mode()
    c.send_query_params(b"SET work_mem = '13MB'", None)
    c.send_query_params(b"SELECT 1/0", None)
    c.pipeline_sync()
    c.send_query_params(b"SHOW work_mem", None)
    c.pipeline_sync()
    out, syncs, deadline = [], 0, time.monotonic() + 10
    while syncs < 2:
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


def one_seed(seed, end):
    rnd = random.Random(seed)
    # directly as "postgres": run.sh counts the server connections of "app" against pool_size
    direct = [connect(PG_PORT, "postgres", "postgres", "") for _ in range(CLIENTS)]
    pooled = [connect(drvlib.PORT, drvlib.DB, drvlib.USER, drvlib.PASSWORD) for _ in range(CLIENTS)]
    try:
        turn = None
        for step in range(STEPS):
            if time.monotonic() > end:
                break
            if turn is None or direct[turn].transaction_status == pq.TransactionStatus.IDLE:
                turn = rnd.randrange(CLIENTS)
            ops = operations(rnd.randrange(4))
            op = ops[rnd.randrange(len(ops))]
            want, got = run(direct[turn], op), run(pooled[turn], op)
            if want != got:
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
