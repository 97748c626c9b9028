"""drvlib.py: the check runner and the synchronous suite shared by the
psycopg2 and psycopg (3) driver tests (t/drivers/run.sh starts PostgreSQL
and pgdog and passes PGDOG_TEST_* in the environment).

Output: "ok - NAME" or "not ok - NAME: MESSAGE" per check, then "done".
"""
import os
import sys
import threading
import time
import traceback

HOST = os.environ.get("PGDOG_TEST_HOST", "127.0.0.1")
PORT = int(os.environ.get("PGDOG_TEST_PORT", "6432"))
USER = os.environ.get("PGDOG_TEST_USER", "app")
PASSWORD = os.environ.get("PGDOG_TEST_PASSWORD", "app_pw")
DB = os.environ.get("PGDOG_TEST_DB", "app")
MODE = os.environ.get("PGDOG_TEST_POOLER_MODE", "transaction")
CLIENTS = int(os.environ.get("DRV_CLIENTS", "10"))
ITERATIONS = int(os.environ.get("DRV_ITERATIONS", "30"))
DEFAULT_SEARCH_PATH = '"$user", public'


class CheckFailed(Exception):
    pass


def eq(got, want, what):
    if got != want:
        raise CheckFailed("%s: got %r, expected %r" % (what, got, want))


def expect(cond, msg):
    if not cond:
        raise CheckFailed(msg)


class Runner:
    def __init__(self):
        self.failed = 0

    def check(self, name, fn):
        t0 = time.monotonic()
        try:
            fn()
        except CheckFailed as e:
            self.failed += 1
            print("not ok - %s: %s" % (name, e), flush=True)
            return False
        except Exception as e:  # a driver error is a failed check, with its text
            self.failed += 1
            print("not ok - %s: %s: %s" % (name, type(e).__name__, str(e).strip()), flush=True)
            traceback.print_exc(file=sys.stdout)
            return False
        print("ok - %s (%.1f s)" % (name, time.monotonic() - t0), flush=True)
        return True

    def done(self):
        print("done", flush=True)
        sys.exit(1 if self.failed else 0)


def settings_of(rows):
    """(application_name, search_path, statement_timeout, myapp.client_id or '')"""
    r = rows[0]
    return (r[0], r[1], r[2], r[3] or "")


SETTINGS_SQL = ("SELECT current_setting('application_name'), current_setting('search_path'), "
                "current_setting('statement_timeout'), current_setting('myapp.client_id', true)")


def run_concurrently(n, fn):
    """Run fn(i) in n threads started together; returns the list of error strings."""
    errors = [None] * n
    barrier = threading.Barrier(n)

    def body(i):
        try:
            barrier.wait(timeout=30)
            fn(i)
        except Exception as e:
            errors[i] = "client %d: %s: %s" % (i, type(e).__name__, str(e).strip())

    threads = [threading.Thread(target=body, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
        if t.is_alive():
            errors.append("a client thread did not finish within 120 s")
            break
    return [e for e in errors if e]


def run_sync_suite(d):
    """The suite for a synchronous DB-API driver; d is its adapter (see drv_psycopg2.py)."""
    r = Runner()
    state = {}

    def connect_scram():
        try:
            bad = d.connect("drv_bad", password="wrong_pw")
            bad.close()
            raise CheckFailed("a wrong password was accepted")
        except d.Error:
            pass
        m = d.connect("drv_main")
        state["main"] = m
        eq(d.q(m, "SELECT current_user, current_setting('application_name')"),
           [("app", "drv_main")], "current_user, application_name")
        conns = [d.connect("drv_c%d" % i) for i in range(3)]
        for i, c in enumerate(conns):
            eq(d.q(c, "SELECT current_setting('application_name')"), [("drv_c%d" % i,)],
               "application_name of connection %d" % i)
        for c in conns:
            c.close()

    if not r.check("connect with SCRAM (and a wrong password is refused)", connect_scram):
        r.done()
    m = state["main"]

    def simple_query():
        eq(d.q(m, "SELECT 1 + 1"), [(2,)], "SELECT 1 + 1")
        rows = d.q(m, "SELECT g FROM generate_series(1, 1000) g")
        eq(len(rows), 1000, "rows of generate_series")
        eq(sum(x[0] for x in rows), 500500, "sum of generate_series")
        eq(d.q(m, "SELECT 'it''s', NULL::text"), [("it's", None)], "quoted text and NULL")

    r.check("simple queries", simple_query)

    def params():
        eq(d.q(m, "SELECT %s::int + %s::int, %s::text, %s::text IS NULL", (2, 3, "it's; --", None)),
           [(5, "it's; --", True)], "parameters")
        for i in range(20):
            eq(d.q(m, "SELECT %s::int * 3", (i,)), [(i * 3,)], "parameter %d" % i)

    r.check("parameterized queries", params)

    def setup_table():
        d.exec(m, "DROP TABLE IF EXISTS drv_items")
        d.exec(m, "CREATE TABLE drv_items (id int PRIMARY KEY, v int NOT NULL, who text)")
        d.exec(m, "DROP TABLE IF EXISTS drv_log")
        d.exec(m, "CREATE TABLE drv_log (client int NOT NULL, iter int NOT NULL)")
        for i in range(-1, CLIENTS):
            d.exec(m, "INSERT INTO drv_items VALUES (%s, 0, 'init')", (i,))
        eq(d.q(m, "SELECT count(*) FROM drv_items"), [(CLIENTS + 1,)], "rows")

    r.check("create tables", setup_table)

    def tx_commit():
        d.begin(m)
        d.exec(m, "UPDATE drv_items SET v = 10, who = 'main' WHERE id = -1")
        eq(d.q(m, "SELECT v FROM drv_items WHERE id = -1"), [(10,)], "inside the transaction")
        d.commit(m)
        other = d.connect("drv_other")
        eq(d.q(other, "SELECT v, who FROM drv_items WHERE id = -1"), [(10, "main")],
           "committed row seen by another connection")
        other.close()
        eq(d.q(m, "SELECT v FROM drv_items WHERE id = -1"), [(10,)], "after commit")

    r.check("transaction commit", tx_commit)

    def tx_rollback():
        d.begin(m)
        d.exec(m, "UPDATE drv_items SET v = 20 WHERE id = -1")
        d.exec(m, "INSERT INTO drv_items VALUES (1000, 1, 'rolled back')")
        eq(d.q(m, "SELECT v FROM drv_items WHERE id = -1"), [(20,)], "inside the transaction")
        d.rollback(m)
        eq(d.q(m, "SELECT v FROM drv_items WHERE id = -1"), [(10,)], "after rollback")
        eq(d.q(m, "SELECT count(*) FROM drv_items WHERE id = 1000"), [(0,)],
           "rolled-back insert")

    r.check("transaction rollback", tx_rollback)

    def tx_error():
        d.begin(m)
        d.exec(m, "INSERT INTO drv_items VALUES (1001, 1, 'error')")
        try:
            d.q(m, "SELECT 1 / 0")
            raise CheckFailed("1 / 0 did not fail")
        except d.Error as e:
            eq(d.sqlstate(e), "22012", "SQLSTATE of 1 / 0")
        try:
            d.q(m, "SELECT 1")
            raise CheckFailed("a query in a failed transaction succeeded")
        except d.Error as e:
            eq(d.sqlstate(e), "25P02", "SQLSTATE in a failed transaction")
        d.rollback(m)
        eq(d.q(m, "SELECT 1"), [(1,)], "the connection after ROLLBACK")
        eq(d.q(m, "SELECT count(*) FROM drv_items WHERE id = 1001"), [(0,)],
           "insert before the error")
        # and a transaction on the same connection works again
        d.begin(m)
        d.exec(m, "UPDATE drv_items SET v = v + 1 WHERE id = -1")
        d.commit(m)
        eq(d.q(m, "SELECT v FROM drv_items WHERE id = -1"), [(11,)], "commit after the error")

    r.check("error inside a transaction, rollback, reuse", tx_error)

    main_settings = ("drv_main_set", "drv_s_main, public", "17s", "main")

    def set_persists():
        d.exec(m, "SET application_name = 'drv_main_set'")
        d.exec(m, "SET search_path TO drv_s_main, public")
        d.exec(m, "SET statement_timeout = '17s'")
        d.exec(m, "SET myapp.client_id = 'main'")
        other = d.connect("drv_other")
        for i in range(6):
            # another client runs between main's transactions (and may get its server)
            eq(settings_of(d.q(other, SETTINGS_SQL)), ("drv_other", DEFAULT_SEARCH_PATH, "0", ""),
               "settings of another connection, round %d" % i)
            d.begin(m)
            eq(settings_of(d.q(m, SETTINGS_SQL)), main_settings,
               "settings in transaction %d" % i)
            d.exec(m, "UPDATE drv_items SET v = v + 1 WHERE id = -1")
            d.commit(m)
            eq(settings_of(d.q(m, SETTINGS_SQL)), main_settings, "settings after transaction %d" % i)
        other.close()
        # statement_timeout is in effect, not only shown
        d.exec(m, "SET statement_timeout = '200ms'")
        try:
            d.q(m, "SELECT pg_sleep(2)")
            raise CheckFailed("statement_timeout = 200ms did not cancel pg_sleep(2)")
        except d.Error as e:
            eq(d.sqlstate(e), "57014", "SQLSTATE of a statement timeout")
        d.exec(m, "SET statement_timeout = '17s'")
        eq(settings_of(d.q(m, SETTINGS_SQL)), main_settings, "settings after the timeout")

    r.check("SET persists across transactions and stays on its connection", set_persists)

    def set_tx_semantics():
        d.begin(m)
        d.exec(m, "SET application_name = 'drv_rolled_back'")
        d.exec(m, "SET LOCAL statement_timeout = '3s'")
        eq(d.q(m, "SHOW application_name"), [("drv_rolled_back",)], "SET inside a transaction")
        eq(d.q(m, "SHOW statement_timeout"), [("3s",)], "SET LOCAL inside a transaction")
        d.rollback(m)
        eq(settings_of(d.q(m, SETTINGS_SQL)), main_settings, "settings after ROLLBACK")
        d.begin(m)
        d.exec(m, "SET LOCAL statement_timeout = '4s'")
        d.exec(m, "SET application_name = 'drv_committed'")
        d.commit(m)
        eq(settings_of(d.q(m, SETTINGS_SQL)),
           ("drv_committed", "drv_s_main, public", "17s", "main"), "settings after COMMIT")

    r.check("SET and SET LOCAL inside transactions that roll back and commit", set_tx_semantics)

    def reset_startup():
        # RESET goes back to the value the client sent in its startup packet
        d.exec(m, "SET application_name = 'drv_before_reset'")
        d.exec(m, "RESET application_name")
        eq(d.q(m, "SHOW application_name"), [("drv_main",)], "RESET application_name")
        d.exec(m, "SET application_name = 'drv_before_reset_all'")
        d.exec(m, "SET search_path TO drv_s_main, public")
        d.exec(m, "SET statement_timeout = '17s'")
        d.exec(m, "RESET ALL")
        for i in range(3):
            got = settings_of(d.q(m, SETTINGS_SQL))
            eq(got[:3], ("drv_main", DEFAULT_SEARCH_PATH, "0"),
               "settings after RESET ALL, query %d" % i)

    r.check("RESET and RESET ALL restore the startup parameters", reset_startup)
    d.exec(m, "RESET ALL")
    d.exec(m, "SET application_name = 'drv_main'")

    def concurrency():
        def client(i):
            c = d.connect("drv_w%d" % i)
            try:
                want = ("drv_w%d" % i, DEFAULT_SEARCH_PATH, "0", "")
                if i > 0:  # client 0 keeps the defaults: it sees any leak
                    d.exec(c, "SET application_name = 'drv_set_w%d'" % i)
                    d.exec(c, "SET search_path TO drv_s%d, public" % i)
                    d.exec(c, "SET statement_timeout = '%ds'" % (100 + i))
                    d.exec(c, "SET myapp.client_id = '%d'" % i)
                    want = ("drv_set_w%d" % i, "drv_s%d, public" % i, "%ds" % (100 + i), str(i))
                v = 0
                committed = 0
                for it in range(ITERATIONS):
                    d.begin(c)
                    got = d.q(c, "UPDATE drv_items SET v = v + 1, who = %s WHERE id = %s RETURNING v",
                              ("w%d" % i, i))
                    eq(got, [(v + 1,)], "iteration %d: UPDATE ... RETURNING" % it)
                    d.exec(c, "INSERT INTO drv_log VALUES (%s, %s)", (i, it))
                    eq(settings_of(d.q(c, SETTINGS_SQL)), want, "iteration %d: settings in the transaction" % it)
                    if it % 3 == 2:
                        d.rollback(c)
                    else:
                        d.commit(c)
                        v += 1
                        committed += 1
                    eq(d.q(c, "SELECT v, who FROM drv_items WHERE id = %s", (i,)),
                       [(v, "w%d" % i if v > 0 else "init")], "iteration %d: own row" % it)
                    eq(settings_of(d.q(c, SETTINGS_SQL)), want, "iteration %d: settings" % it)
                eq(d.q(c, "SELECT count(*) FROM drv_log WHERE client = %s", (i,)), [(committed,)],
                   "own log rows")
            finally:
                c.close()

        errors = run_concurrently(CLIENTS, client)
        expect(not errors, "; ".join(errors[:3]) + (" (and %d more)" % (len(errors) - 3) if len(errors) > 3 else ""))
        eq(d.q(m, "SELECT count(*) FROM drv_log"), [(CLIENTS * (ITERATIONS - ITERATIONS // 3),)],
           "log rows of all clients")

    r.check("%d connections x %d iterations read back their own writes and settings"
            % (CLIENTS, ITERATIONS), concurrency)

    def prepared():
        other = d.connect("drv_other")
        v0 = d.q(m, "SELECT v FROM drv_items WHERE id = -1")[0][0]
        for i in range(20):
            eq(d.prepared(m, "drv_get", "SELECT v, $1::int * 2 FROM drv_items WHERE id = -1",
                          "SELECT v, %s::int * 2 FROM drv_items WHERE id = -1", (i,)),
               [(v0, i * 2)], "prepared statement, execution %d" % i)
            eq(d.q(other, "SELECT %s::int", (i,)), [(i,)], "another connection in between")
            if i % 5 == 4:
                d.begin(m)
                eq(d.prepared(m, "drv_get", "SELECT v, $1::int * 2 FROM drv_items WHERE id = -1",
                              "SELECT v, %s::int * 2 FROM drv_items WHERE id = -1", (7,))[0][1], 14,
                   "prepared statement inside a transaction")
                d.commit(m)
        other.close()

    r.check("prepared statements, reused across transactions", prepared)

    def prepared_isolation():
        def client(i):
            c = d.connect("drv_p%d" % i)
            try:
                for it in range(ITERATIONS):
                    # the same statement name on every connection, a different text on each
                    eq(d.prepared(c, "drv_same", "SELECT $1::int + %d" % (1000 * i),
                                  "SELECT %%s::int + %d" % (1000 * i), (it,)),
                       [(it + 1000 * i,)], "iteration %d: own prepared statement" % it)
            finally:
                c.close()

        errors = run_concurrently(4, client)
        expect(not errors, "; ".join(errors[:3]))

    r.check("prepared statements with the same name on 4 connections stay apart", prepared_isolation)

    # checks of one driver's own features: extra_checks(runner, connection)
    if hasattr(d, "extra_checks"):
        d.extra_checks(r, m)

    def still_serves():
        m.close()
        c = d.connect("drv_last")
        eq(settings_of(d.q(c, SETTINGS_SQL)), ("drv_last", DEFAULT_SEARCH_PATH, "0", ""),
           "settings of a new connection")
        c.close()

    r.check("a new connection sees only defaults", still_serves)
    r.done()
