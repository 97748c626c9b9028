"""drv_psycopg2.py: psycopg2 through pgdog (t/drivers/run.sh psycopg2).
psycopg2 interpolates parameters on the client; prepared statements are
server-side PREPARE / EXECUTE in SQL, the way psycopg2 applications do it."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import drvlib  # noqa: E402
import psycopg2  # noqa: E402
import psycopg2.extensions  # noqa: E402


class Conn(psycopg2.extensions.connection):
    def __init__(self, *a, **kw):
        super().__init__(*a, **kw)
        self.prepared_names = set()


class Adapter:
    Error = psycopg2.Error

    @staticmethod
    def connect(app, password=None):
        c = psycopg2.connect(host=drvlib.HOST, port=drvlib.PORT, user=drvlib.USER,
                             password=password or drvlib.PASSWORD, dbname=drvlib.DB,
                             application_name=app, connect_timeout=10, connection_factory=Conn)
        c.autocommit = True
        return c

    @staticmethod
    def q(c, sql, params=None):
        with c.cursor() as cur:
            cur.execute(sql, params)
            return [tuple(r) for r in cur.fetchall()]

    @staticmethod
    def exec(c, sql, params=None):
        with c.cursor() as cur:
            cur.execute(sql, params)

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
        return e.pgcode

    @staticmethod
    def prepared(c, name, dollar_sql, pct_sql, params):
        if name not in c.prepared_names:
            Adapter.exec(c, "PREPARE %s AS %s" % (name, dollar_sql))
            c.prepared_names.add(name)
        return Adapter.q(c, "EXECUTE %s (%s)" % (name, ", ".join(["%s"] * len(params))), params)

    @staticmethod
    def extra_checks(r, m):
        def set_session():
            # set_session() in autocommit mode sets default_transaction_isolation / _read_only
            c = Adapter.connect("drv_sess")
            try:
                c.set_session(isolation_level="SERIALIZABLE", readonly=True)
                for i in range(3):
                    drvlib.eq(Adapter.q(m, "SHOW transaction_isolation"), [("read committed",)],
                              "another connection, round %d" % i)
                    drvlib.eq(Adapter.q(c, "SHOW transaction_isolation"), [("serializable",)],
                              "isolation, round %d" % i)
                    drvlib.eq(Adapter.q(c, "SHOW transaction_read_only"), [("on",)],
                              "read only, round %d" % i)
                c.set_session(isolation_level="DEFAULT", readonly="DEFAULT")
                drvlib.eq(Adapter.q(c, "SHOW transaction_isolation"), [("read committed",)],
                          "isolation back to the default")
            finally:
                c.close()

        r.check("set_session() stays on its connection", set_session)


drvlib.run_sync_suite(Adapter)
