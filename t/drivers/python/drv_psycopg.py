"""drv_psycopg.py: psycopg 3 through pgdog (t/drivers/run.sh psycopg).
psycopg 3 binds parameters on the server (extended protocol); prepared
statements are the driver's own (execute(..., prepare=True): named
statements _pg3_N, the same names on every connection)."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import drvlib  # noqa: E402
import psycopg  # noqa: E402


class Adapter:
    Error = psycopg.Error

    @staticmethod
    def connect(app, password=None):
        return psycopg.connect(host=drvlib.HOST, port=drvlib.PORT, user=drvlib.USER,
                               password=password or drvlib.PASSWORD, dbname=drvlib.DB,
                               application_name=app, connect_timeout=10, autocommit=True)

    @staticmethod
    def q(c, sql, params=None):
        return [tuple(r) for r in c.execute(sql, params).fetchall()]

    @staticmethod
    def exec(c, sql, params=None):
        c.execute(sql, params)

    @staticmethod
    def begin(c):
        c.autocommit = False

    @staticmethod
    def commit(c):
        c.commit()
        c.autocommit = True

    @staticmethod
    def rollback(c):
        c.rollback()
        c.autocommit = True

    @staticmethod
    def sqlstate(e):
        return e.sqlstate

    @staticmethod
    def prepared(c, name, dollar_sql, pct_sql, params):
        return [tuple(r) for r in c.execute(pct_sql, params, prepare=True).fetchall()]

    @staticmethod
    def extra_checks(r, m):
        def evicted():
            # past prepared_max psycopg sends DEALLOCATE _pg3_N (SQL) for the statement it
            # prepared with a Parse longest ago, and prepares it again when it comes back
            c = Adapter.connect("drv_evict")
            c.prepared_max = 3
            try:
                for rnd in range(3):
                    for k in range(8):
                        sql = "SELECT %%s::int + %d" % (100 * k)
                        for _ in range(2):
                            drvlib.eq([tuple(x) for x in c.execute(sql, (rnd,), prepare=True)],
                                      [(rnd + 100 * k,)], "round %d, statement %d" % (rnd, k))
                        drvlib.eq(drvlib.settings_of(Adapter.q(m, drvlib.SETTINGS_SQL))[0],
                                  "drv_main", "another connection in between")
                n = Adapter.q(c, "SELECT count(*) FROM pg_prepared_statements")[0][0]
                drvlib.expect(n >= 0, "pg_prepared_statements")
            finally:
                c.close()

        r.check("statements psycopg deallocates past prepared_max", evicted)

        def pipeline():
            # pipeline mode: the requests go out together, DEALLOCATEs among them
            c = Adapter.connect("drv_pipe")
            c.prepared_max = 3
            try:
                for rnd in range(3):
                    with c.pipeline():
                        curs = []
                        for k in range(8):
                            cur = c.cursor()
                            cur.execute("SELECT %%s::int + %d" % (100 * k), (rnd,), prepare=True)
                            curs.append(cur)
                        c.execute("SET application_name = 'drv_pipe_%d'" % rnd)
                    for k, cur in enumerate(curs):
                        drvlib.eq(cur.fetchall(), [(rnd + 100 * k,)], "round %d, statement %d" % (rnd, k))
                    drvlib.eq(drvlib.settings_of(Adapter.q(m, drvlib.SETTINGS_SQL))[0], "drv_main",
                              "another connection in between")
                    drvlib.eq(Adapter.q(c, "SHOW application_name"), [("drv_pipe_%d" % rnd,)],
                              "application_name set in the pipeline")
            finally:
                c.close()

        r.check("pipeline mode with prepared statements and their DEALLOCATEs", pipeline)


drvlib.run_sync_suite(Adapter)
