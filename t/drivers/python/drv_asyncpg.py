"""drv_asyncpg.py: asyncpg through pgdog (t/drivers/run.sh asyncpg).
asyncpg runs every query with parameters as a named prepared statement and
caches them per connection (__asyncpg_stmt_N__, the same names on every
connection); conn.prepare() is its explicit prepared statement."""
import asyncio
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import drvlib  # noqa: E402
from drvlib import eq, expect, CheckFailed, DEFAULT_SEARCH_PATH, SETTINGS_SQL  # noqa: E402
import asyncpg  # noqa: E402

CLIENTS, ITERATIONS = drvlib.CLIENTS, drvlib.ITERATIONS


async def connect(app, password=None, **kw):
    return await asyncpg.connect(host=drvlib.HOST, port=drvlib.PORT, user=drvlib.USER,
                                 password=password or drvlib.PASSWORD, database=drvlib.DB,
                                 server_settings={"application_name": app}, timeout=10, **kw)


async def settings(c):
    r = await c.fetchrow(SETTINGS_SQL)
    return (r[0], r[1], r[2], r[3] or "")


async def expect_error(coro, sqlstate, what):
    try:
        await coro
    except asyncpg.PostgresError as e:
        eq(e.sqlstate, sqlstate, "SQLSTATE of " + what)
        return
    raise CheckFailed(what + " did not fail")


async def gather_clients(n, fn):
    res = await asyncio.gather(*[fn(i) for i in range(n)], return_exceptions=True)
    errors = ["client %d: %s: %s" % (i, type(e).__name__, str(e).strip())
              for i, e in enumerate(res) if isinstance(e, BaseException)]
    expect(not errors, "; ".join(errors[:3]) +
           (" (and %d more)" % (len(errors) - 3) if len(errors) > 3 else ""))


async def main():
    r = drvlib.Runner()
    st = {}

    async def check(name, fn):
        err = []
        try:
            await asyncio.wait_for(fn(), 60)
        except asyncio.TimeoutError:
            err.append(CheckFailed("timed out after 60 s"))
        except Exception as e:
            err.append(e)

        def result():
            if err:
                raise err[0]
        return r.check(name, result)

    async def connect_scram():
        try:
            bad = await connect("drv_bad", password="wrong_pw")
            await bad.close()
            raise CheckFailed("a wrong password was accepted")
        except asyncpg.PostgresError:
            pass
        m = await connect("drv_main")
        st["m"] = m
        eq(tuple(await m.fetchrow("SELECT current_user, current_setting('application_name')")),
           ("app", "drv_main"), "current_user, application_name")

    if not await check("connect with SCRAM (and a wrong password is refused)", connect_scram):
        r.done()
    m = st["m"]

    async def simple():
        eq(await m.fetchval("SELECT 1 + 1"), 2, "SELECT 1 + 1")
        rows = await m.fetch("SELECT g FROM generate_series(1, 1000) g")
        eq(sum(x[0] for x in rows), 500500, "sum of generate_series")
        # the simple protocol: execute() without arguments, several statements
        await m.execute("SELECT 1; SELECT 2")

    await check("simple queries", simple)

    async def params():
        eq(tuple(await m.fetchrow("SELECT $1::int + $2::int, $3::text, $4::text IS NULL",
                                  2, 3, "it's; --", None)), (5, "it's; --", True), "parameters")
        for i in range(20):
            eq(await m.fetchval("SELECT $1::int * 3", i), i * 3, "parameter %d" % i)

    await check("parameterized queries", params)

    async def tables():
        await m.execute("DROP TABLE IF EXISTS drv_items; DROP TABLE IF EXISTS drv_log;"
                        "CREATE TABLE drv_items (id int PRIMARY KEY, v int NOT NULL, who text);"
                        "CREATE TABLE drv_log (client int NOT NULL, iter int NOT NULL)")
        await m.executemany("INSERT INTO drv_items VALUES ($1, 0, 'init')",
                            [(i,) for i in range(-1, CLIENTS)])
        eq(await m.fetchval("SELECT count(*) FROM drv_items"), CLIENTS + 1, "rows")

    await check("create tables", tables)

    async def commit():
        async with m.transaction():
            await m.execute("UPDATE drv_items SET v = 10, who = 'main' WHERE id = -1")
            eq(await m.fetchval("SELECT v FROM drv_items WHERE id = -1"), 10, "inside")
        other = await connect("drv_other")
        eq(tuple(await other.fetchrow("SELECT v, who FROM drv_items WHERE id = -1")), (10, "main"),
           "committed row seen by another connection")
        await other.close()

    await check("transaction commit", commit)

    async def rollback():
        tx = m.transaction()
        await tx.start()
        await m.execute("UPDATE drv_items SET v = 20 WHERE id = -1")
        await m.execute("INSERT INTO drv_items VALUES (1000, 1, 'rolled back')")
        eq(await m.fetchval("SELECT v FROM drv_items WHERE id = -1"), 20, "inside")
        await tx.rollback()
        eq(await m.fetchval("SELECT v FROM drv_items WHERE id = -1"), 10, "after rollback")
        eq(await m.fetchval("SELECT count(*) FROM drv_items WHERE id = 1000"), 0, "rolled-back insert")

    await check("transaction rollback", rollback)

    async def tx_error():
        tx = m.transaction()
        await tx.start()
        await m.execute("INSERT INTO drv_items VALUES (1001, 1, 'error')")
        await expect_error(m.fetchval("SELECT 1 / $1::int", 0), "22012", "1 / 0")
        await expect_error(m.fetchval("SELECT 1"), "25P02", "a query in a failed transaction")
        await tx.rollback()
        eq(await m.fetchval("SELECT 1"), 1, "the connection after ROLLBACK")
        eq(await m.fetchval("SELECT count(*) FROM drv_items WHERE id = 1001"), 0, "insert before the error")
        async with m.transaction():
            await m.execute("UPDATE drv_items SET v = v + 1 WHERE id = -1")
        eq(await m.fetchval("SELECT v FROM drv_items WHERE id = -1"), 11, "commit after the error")

    await check("error inside a transaction, rollback, reuse", tx_error)

    main_settings = ("drv_main_set", "drv_s_main, public", "17s", "main")

    async def set_persists():
        await m.execute("SET application_name = 'drv_main_set'")
        await m.execute("SET search_path TO drv_s_main, public")
        await m.execute("SET statement_timeout = '17s'")
        await m.execute("SET myapp.client_id = 'main'")
        other = await connect("drv_other")
        for i in range(6):
            eq(await settings(other), ("drv_other", DEFAULT_SEARCH_PATH, "0", ""),
               "settings of another connection, round %d" % i)
            async with m.transaction():
                eq(await settings(m), main_settings, "settings in transaction %d" % i)
                await m.execute("UPDATE drv_items SET v = v + 1 WHERE id = -1")
            eq(await settings(m), main_settings, "settings after transaction %d" % i)
        await other.close()
        await m.execute("SET statement_timeout = '200ms'")
        await expect_error(m.fetchval("SELECT pg_sleep(2)"), "57014", "pg_sleep(2) with a 200ms timeout")
        await m.execute("SET statement_timeout = '17s'")
        eq(await settings(m), main_settings, "settings after the timeout")

    await check("SET persists across transactions and stays on its connection", set_persists)

    async def set_tx():
        tx = m.transaction()
        await tx.start()
        await m.execute("SET application_name = 'drv_rolled_back'")
        await m.execute("SET LOCAL statement_timeout = '3s'")
        eq(await m.fetchval("SHOW statement_timeout"), "3s", "SET LOCAL inside a transaction")
        await tx.rollback()
        eq(await settings(m), main_settings, "settings after ROLLBACK")
        async with m.transaction():
            await m.execute("SET LOCAL statement_timeout = '4s'")
            await m.execute("SET application_name = 'drv_committed'")
        eq(await settings(m), ("drv_committed", "drv_s_main, public", "17s", "main"),
           "settings after COMMIT")

    await check("SET and SET LOCAL inside transactions that roll back and commit", set_tx)

    async def reset():
        await m.execute("SET application_name = 'drv_before_reset'")
        await m.execute("RESET application_name")
        eq(await m.fetchval("SHOW application_name"), "drv_main", "RESET application_name")
        await m.execute("SET application_name = 'x'; SET search_path TO x, public;"
                        "SET statement_timeout = '17s'")
        await m.execute("RESET ALL")
        for i in range(3):
            eq((await settings(m))[:3], ("drv_main", DEFAULT_SEARCH_PATH, "0"),
               "settings after RESET ALL, query %d" % i)

    await check("RESET and RESET ALL restore the startup parameters", reset)
    await m.execute("RESET ALL; SET application_name = 'drv_main'")

    async def concurrency():
        async def client(i):
            c = await connect("drv_w%d" % i)
            try:
                want = ("drv_w%d" % i, DEFAULT_SEARCH_PATH, "0", "")
                if i > 0:
                    await c.execute("SET application_name = 'drv_set_w%d'" % i)
                    await c.execute("SET search_path TO drv_s%d, public" % i)
                    await c.execute("SET statement_timeout = '%ds'" % (100 + i))
                    await c.execute("SET myapp.client_id = '%d'" % i)
                    want = ("drv_set_w%d" % i, "drv_s%d, public" % i, "%ds" % (100 + i), str(i))
                v = committed = 0
                for it in range(ITERATIONS):
                    tx = c.transaction()
                    await tx.start()
                    got = await c.fetchval("UPDATE drv_items SET v = v + 1, who = $1 WHERE id = $2 RETURNING v",
                                           "w%d" % i, i)
                    eq(got, v + 1, "iteration %d: UPDATE ... RETURNING" % it)
                    await c.execute("INSERT INTO drv_log VALUES ($1, $2)", i, it)
                    eq(await settings(c), want, "iteration %d: settings in the transaction" % it)
                    if it % 3 == 2:
                        await tx.rollback()
                    else:
                        await tx.commit()
                        v += 1
                        committed += 1
                    eq(tuple(await c.fetchrow("SELECT v, who FROM drv_items WHERE id = $1", i)),
                       (v, "w%d" % i if v > 0 else "init"), "iteration %d: own row" % it)
                    eq(await settings(c), want, "iteration %d: settings" % it)
                eq(await c.fetchval("SELECT count(*) FROM drv_log WHERE client = $1", i), committed,
                   "own log rows")
            finally:
                await c.close()

        await gather_clients(CLIENTS, client)
        eq(await m.fetchval("SELECT count(*) FROM drv_log"), CLIENTS * (ITERATIONS - ITERATIONS // 3),
           "log rows of all clients")

    await check("%d connections x %d iterations read back their own writes and settings"
                % (CLIENTS, ITERATIONS), concurrency)

    async def prepared():
        other = await connect("drv_other")
        stmt = await m.prepare("SELECT v, $1::int * 2 FROM drv_items WHERE id = -1")
        v0 = await m.fetchval("SELECT v FROM drv_items WHERE id = -1")
        for i in range(20):
            eq(tuple(await stmt.fetchrow(i)), (v0, i * 2), "prepared statement, execution %d" % i)
            eq(await other.fetchval("SELECT $1::int", i), i, "another connection in between")
            if i % 5 == 4:
                async with m.transaction():
                    eq((await stmt.fetchrow(7))[1], 14, "prepared statement inside a transaction")
        await other.close()

    await check("prepared statements, reused across transactions", prepared)

    async def prepared_isolation():
        async def client(i):
            c = await connect("drv_p%d" % i)
            try:
                # each connection's first statement: the same name, a different text
                stmt = await c.prepare("SELECT $1::int + %d" % (1000 * i))
                for it in range(ITERATIONS):
                    eq(await stmt.fetchval(it), it + 1000 * i, "iteration %d: own prepared statement" % it)
                    eq(await c.fetchval("SELECT $1::int + %d" % (1000 * i), it), it + 1000 * i,
                       "iteration %d: cached statement" % it)
            finally:
                await c.close()

        await gather_clients(4, client)

    await check("prepared statements with the same name on 4 connections stay apart", prepared_isolation)

    async def set_cached():
        # fetch() runs a SET as a cached named statement: the third one is a Bind alone
        other = await connect("drv_other")
        for path in ("drv_s1, public", "drv_s2, public", "drv_s1, public"):
            await m.fetch("SET search_path TO " + path)
        for i in range(3):
            # another connection takes the server m used last: m moves to another one
            tx = other.transaction()
            await tx.start()
            eq(await other.fetchval("SHOW search_path"), DEFAULT_SEARCH_PATH,
               "another connection's search_path, round %d" % i)
            eq(await m.fetchval("SHOW search_path"), "drv_s1, public",
               "search_path set by a cached statement, round %d" % i)
            await tx.rollback()
        await m.fetch("RESET search_path")
        await other.close()

    await check("SET through a cached statement takes effect each time it runs", set_cached)

    async def unnamed():
        # statement_cache_size=0: the unnamed statement, prepared with Parse, Describe and
        # Flush, then bound, with a Sync only at the end: one server from Parse to Sync
        async def client(i):
            c = await connect("drv_u%d" % i, statement_cache_size=0)
            try:
                for it in range(ITERATIONS):
                    eq(await c.fetchval("SELECT $1::text || '/' || $2::text || '/%d'" % i, "u%d" % i,
                                        str(it)), "u%d/%d/%d" % (i, it, i), "iteration %d: own row" % it)
                    async with c.transaction():
                        eq(await c.fetchval("SELECT $1::int + %d" % i, it), it + i,
                           "iteration %d: in a transaction" % it)
            finally:
                await c.close()

        await gather_clients(CLIENTS, client)

    await check("%d connections without a statement cache (the unnamed statement) get their own rows"
                % CLIENTS, unnamed)

    async def cursors_copy():
        other = await connect("drv_other")
        await m.execute("DROP TABLE IF EXISTS drv_copy; CREATE TABLE drv_copy (id int, t text)")
        for rnd in range(2):
            # a cursor fetches in batches (Execute with a row limit, PortalSuspended)
            async with m.transaction():
                total = 0
                async for r in m.cursor("SELECT g FROM generate_series(1, 1000) g", prefetch=50):
                    total += r[0]
                    if r[0] % 250 == 0:
                        eq(await other.fetchval("SELECT $1::int", r[0]), r[0], "another connection")
                eq(total, 500500, "sum through a cursor, round %d" % rnd)
            # COPY FROM STDIN (binary) and a pipelined executemany
            await m.copy_records_to_table("drv_copy", records=[(i, "c%d" % i) for i in range(500)])
            await m.executemany("INSERT INTO drv_copy VALUES ($1, $2)", [(i, "e") for i in range(100)])
            eq(await m.fetchval("SELECT count(*) FROM drv_copy"), 600 * (rnd + 1), "rows, round %d" % rnd)
        out = []
        await m.copy_from_table("drv_copy", output=lambda b: out.append(len(b)) or asyncio.sleep(0))
        expect(sum(out) > 0, "COPY TO STDOUT returned nothing")
        await m.execute("DROP TABLE drv_copy")
        await other.close()

    await check("cursors, COPY in and out, executemany", cursors_copy)

    async def last():
        await m.close()
        c = await connect("drv_last")
        eq(await settings(c), ("drv_last", DEFAULT_SEARCH_PATH, "0", ""), "settings of a new connection")
        await c.close()

    await check("a new connection sees only defaults", last)
    r.done()


asyncio.run(main())
