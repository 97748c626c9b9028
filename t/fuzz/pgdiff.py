#!/usr/bin/env python3
"""pgdiff.py: differential protocol fuzzer, pgdog in transaction mode against PostgreSQL direct.

Starts one throwaway PostgreSQL 15 cluster (t/pgenv.sh) with two identical databases, "fa" read
by the fuzz client directly and "fb" read through a pgdog it starts (transaction mode, a small
pool). Random sessions of wire-protocol messages (Query, Parse, Bind, Describe, Execute, Close,
Flush, Sync; pipelined in batches; SETs, transactions, savepoints, errors, named and unnamed
statements, SQL PREPARE/EXECUTE/DEALLOCATE, DISCARD ALL, cursors, temporary tables) run once
against each; background clients on pgdog's pool move the fuzz client from server to server and
leave their own settings and statements there. Every reply the client gets is compared after
normalisation (backend key, error positions and source locations, table OIDs), and after each
session one new client per server of the pool (probe(), PROBE_SQL) must find its server as on a
fresh pool, with nothing another client left there. A background client's request that gets no
ReadyForQuery within 10 s counts as an error (exit 1). A difference is
written to OUT/div-N.txt with the session that caused it (shrunk, when --shrink, to a smaller
session that still differs), and the script exits 1.

    python3 t/fuzz/pgdiff.py --pgdog build/pgdog [--mode extended|full|disabled]
        [--seconds 300] [--seed N] [--noise 2] [--pool 2] [--out DIR] [--shrink]
        [--replay OUT/div-N.txt]

Standard library only; run as root (the cluster runs as user postgres) or as a user that may
run initdb. It stops what it started, by PID, when it ends. This is a developer's tool, not part
of `make check`: the documented limitations (README, "Current limitations") show up as
differences when the generator reaches them, and --skip-known filters the ones it knows.
"""

import argparse
import ast
import fcntl
import os
import random
import re
import select
import signal
import socket
import struct
import subprocess
import sys
import threading
import time

SRCDIR = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

# --- wire protocol ---------------------------------------------------------------------------


def msg(tag, body=b""):
    return tag + struct.pack("!I", len(body) + 4) + body


def cstr(s):
    return s.encode() + b"\0"


def m_query(sql):
    return ("Q", sql), msg(b"Q", cstr(sql))


def m_parse(name, sql, ntypes=0):
    return ("P", name, sql), msg(b"P", cstr(name) + cstr(sql) + struct.pack("!H", ntypes) +
                                 b"\0\0\0\0" * ntypes)


def m_bind(portal, stmt, params):
    body = cstr(portal) + cstr(stmt) + struct.pack("!HH", 0, len(params))
    for p in params:
        b = p.encode()
        body += struct.pack("!I", len(b)) + b
    body += struct.pack("!H", 0)
    return ("B", portal, stmt, tuple(params)), msg(b"B", body)


def m_describe(kind, name):
    return ("D", kind, name), msg(b"D", kind.encode() + cstr(name))


def m_execute(portal, maxrows=0):
    return ("E", portal, maxrows), msg(b"E", cstr(portal) + struct.pack("!I", maxrows))


def m_close(kind, name):
    return ("C", kind, name), msg(b"C", kind.encode() + cstr(name))


def m_sync():
    return ("S",), msg(b"S")


def m_flush():
    return ("H",), msg(b"H")


class Conn:
    def __init__(self, port, user, db, timeout=10.0, startup=None):
        self.s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = b""
        params = cstr("user") + cstr(user) + cstr("database") + cstr(db)
        for k, v in (startup or {}).items():
            params += cstr(k) + cstr(v)
        params += b"\0"
        body = struct.pack("!I", 196608) + params
        self.s.sendall(struct.pack("!I", len(body) + 4) + body)
        while True:
            t, b = self.read(timeout)
            if t == "E":
                raise RuntimeError("login failed: %r" % b)
            if t == "Z":
                break

    def read(self, timeout):
        """one message (tag, body), or None after timeout seconds without one"""
        end = time.monotonic() + timeout
        while True:
            if len(self.buf) >= 5:
                n = struct.unpack("!I", self.buf[1:5])[0]
                if len(self.buf) >= n + 1:
                    t, b = self.buf[0:1].decode("latin-1"), self.buf[5:n + 1]
                    self.buf = self.buf[n + 1:]
                    return t, b
            left = end - time.monotonic()
            if left <= 0:
                return None
            r, _, _ = select.select([self.s], [], [], left)
            if not r:
                return None
            d = self.s.recv(65536)
            if not d:
                raise EOFError("connection closed")
            self.buf += d

    def send(self, data):
        self.s.sendall(data)

    def close(self):
        try:
            self.s.sendall(msg(b"X"))
        except OSError:
            pass
        self.s.close()


def fields(body):
    out = {}
    for part in body.split(b"\0"):
        if part:
            out[chr(part[0])] = part[1:].decode("utf-8", "replace")
    return out


NAME_RE = re.compile(r"__pgdog_[A-Za-z0-9_]*")


def norm(t, b):
    """a reply message as a comparable, readable string"""
    if t in "EN":
        f = fields(b)
        text = NAME_RE.sub("<pgdog-name>", f.get("M", ""))
        return "%s %s %s: %s" % (t, f.get("V", f.get("S", "")), f.get("C", ""), text)
    if t == "T":
        n = struct.unpack("!H", b[:2])[0]
        p, cols = 2, []
        for _ in range(n):
            e = b.index(b"\0", p)
            name = b[p:e].decode()
            _tab, att, typ, _sz, _mod, fmt = struct.unpack("!IhIhiH", b[e + 1:e + 19])
            cols.append("%s:%d:%d:%d" % (name, att, typ, fmt))
            p = e + 19
        return "T " + ",".join(cols)
    if t == "D":
        n = struct.unpack("!H", b[:2])[0]
        p, vals = 2, []
        for _ in range(n):
            ln = struct.unpack("!i", b[p:p + 4])[0]
            p += 4
            if ln < 0:
                vals.append("NULL")
            else:
                vals.append(b[p:p + ln].decode("utf-8", "replace"))
                p += ln
        return "D " + "|".join(vals)
    if t == "A":
        pid, rest = b[:4], b[4:]
        return "A " + rest.replace(b"\0", b" ").decode("utf-8", "replace").strip()
    if t == "S":
        return "S " + b.replace(b"\0", b"=", 1).rstrip(b"\0").decode("utf-8", "replace")
    if t in "CZ":
        return t + " " + b.rstrip(b"\0").decode("utf-8", "replace")
    if t == "t":
        return "t " + b.hex()
    return t


def run_batch(conn, batch, want=None, idle=0.5, timeout=10.0):
    """send a batch of messages; read until its ReadyForQuerys came (want: how many, and how
    many messages in all; None: up to one per Sync and Query, stopping after idle seconds
    without a message once fewer came: a Query skipped after an error gets none)"""
    conn.send(b"".join(w for _, w in batch))
    most = sum(1 for d, _ in batch if d[0] in "SQ")
    out, z = [], 0
    while True:
        if want is not None and z >= want[0] and len(out) >= want[1]:
            break
        if want is None and z >= most:
            break
        # the ReadyForQuerys came: what direct sent after them, if it comes soon
        late = want is None or z >= want[0]
        r = conn.read(idle if late else timeout)
        if r is None:
            if not late:
                out.append("<timeout: %d of %d ReadyForQuery>" % (z, want[0]))
            break
        t, b = r
        out.append(norm(t, b))
        if t == "Z":
            z += 1
    return out, (z, len(out))


# --- the generator ---------------------------------------------------------------------------

WORDS = ["64kB", "128kB", "1MB", "4MB"]
STMTS = [
    ("SELECT 1", 0),
    ("SELECT $1::int + 1", 1),
    ("SELECT $1::text || 'x'", 1),
    ("SELECT current_setting('work_mem'), current_setting('search_path')", 0),
    ("SHOW work_mem", 0),
    ("SHOW TimeZone", 0),
    ("SELECT 1/0", 0),
    ("SELECT * FROM nosuchtable", 0),
    ("SELECT id, v FROM t WHERE id = $1", 1),
    ("UPDATE t SET v = v + 1 WHERE id = $1", 1),
    ("INSERT INTO log(c) VALUES ($1)", 1),
    ("SELECT count(*) FROM log", 0),
    ("SELECT generate_series(1, 5)", 0),
    ("BEGIN", 0),
    ("COMMIT", 0),
    ("ROLLBACK", 0),
    ("SAVEPOINT s1", 0),
    ("ROLLBACK TO SAVEPOINT s1", 0),
    ("RELEASE SAVEPOINT s1", 0),
    ("SET work_mem = '%W'", 0),
    ("SET LOCAL work_mem = '%W'", 0),
    ("RESET work_mem", 0),
    ("RESET ALL", 0),
    ("SET search_path = s1, public", 0),
    ("SET search_path = public", 0),
    ("SELECT f FROM st", 0),
    ("SET TimeZone = 'UTC'", 0),
    ("SET TimeZone = 'Europe/Paris'", 0),
    ("SET application_name = 'fz%N'", 0),
    ("SELECT current_setting('application_name')", 0),
    ("PREPARE q1 AS SELECT $1::int * 2", 0),
    ("PREPARE q2 AS SELECT current_setting('work_mem')", 0),
    ("EXECUTE q1(%N)", 0),
    ("EXECUTE q2", 0),
    ("DEALLOCATE q1", 0),
    ("DEALLOCATE ALL", 0),
    ("DISCARD ALL", 0),
    ("CREATE TEMP TABLE IF NOT EXISTS tt(a int)", 0),
    ("INSERT INTO tt VALUES (1)", 0),
    ("SELECT count(*) FROM tt", 0),
    ("DECLARE c1 CURSOR WITH HOLD FOR SELECT generate_series(1, 4)", 0),
    ("FETCH 2 FROM c1", 0),
    ("CLOSE c1", 0),
    ("SELECT pg_advisory_lock(7)", 0),
    ("SELECT pg_advisory_unlock(7)", 0),
    ("SELECT pg_advisory_unlock_all()", 0),
    ("SELECT pg_advisory_xact_lock(8)", 0),
    ("SET ROLE fzr", 0),
    ("RESET ROLE", 0),
    ("SELECT current_user, session_user", 0),
    ("SELECT set_config('work_mem', '%W', false)", 0),
    ("SELECT set_config('work_mem', '%W', true)", 0),
    ("SET SESSION CHARACTERISTICS AS TRANSACTION ISOLATION LEVEL REPEATABLE READ", 0),
    ("BEGIN ISOLATION LEVEL SERIALIZABLE", 0),
    ("SHOW transaction_isolation", 0),
    ("SET statement_timeout = '3s'", 0),
    ("SHOW statement_timeout", 0),
    ("SET LOCAL search_path = s1", 0),
    ("LISTEN ch1", 0),
    ("UNLISTEN *", 0),
    ("SELECT pg_listening_channels()", 0),
    ("CREATE TEMP TABLE tc(a int) ON COMMIT DROP", 0),
    ("CLOSE ALL", 0),
    ("LISTEN ch2", 0),
    ("UNLISTEN ch1", 0),
    ("DROP TABLE IF EXISTS tt", 0),
    ("DISCARD TEMP", 0),
]
NAMES = ["", "", "a", "b"]  # not q1, q2: README, a name shared with SQL PREPARE
PORTALS = ["", "", "p1"]


def sql_of(rnd, i):
    text, npar = STMTS[i]
    text = text.replace("%W", rnd.choice(WORDS)).replace("%N", str(rnd.randint(1, 9)))
    return text, npar


def gen_session(rnd, mode="extended"):
    """a list of batches, each a list of (description, bytes) ending with a Sync or Query; with
    mode "disabled", a statement is used only in the request that parsed it, and only the unnamed
    one (README: pgdog prepares none again on another server there)"""
    nparams = {}  # statement name -> parameter count last parsed under it
    names = [""] if mode == "disabled" else NAMES
    batches = []
    for _ in range(rnd.randint(1, 8)):
        batch = []
        for _ in range(rnd.randint(1, 4)):
            if mode == "disabled" and (not batch or batch[-1][0][0] in "SQ"):
                nparams.clear()
            if rnd.random() < 0.3:
                if rnd.random() < 0.2:
                    parts = [sql_of(rnd, rnd.randrange(len(STMTS)))[0]
                             for _ in range(rnd.randint(2, 3))]
                    parts = [p for p in parts if STMTS_NPAR.get(p, 0) == 0] or ["SELECT 2"]
                    batch.append(m_query("; ".join(parts)))
                else:
                    text, npar = sql_of(rnd, rnd.randrange(len(STMTS)))
                    if npar:
                        text = text.replace("$1", "'%d'" % rnd.randint(1, 5))
                    batch.append(m_query(text))
                continue
            # an extended-protocol request
            name = rnd.choice(names)
            if rnd.random() < 0.7 or name not in nparams:
                text, npar = sql_of(rnd, rnd.randrange(len(STMTS)))
                if text.startswith(("PREPARE", "EXECUTE", "DEALLOCATE q")):
                    name = ""  # README: named Parses of SQL PREPARE, EXECUTE, DEALLOCATE
                batch.append(m_parse(name, text))
                nparams[name] = npar
            npar = nparams.get(name, 0)
            portal = rnd.choice(PORTALS)
            r = rnd.random()
            if r < 0.1:
                batch.append(m_describe("S", name))
            elif r < 0.15:
                batch.append(m_close("S", name))
                nparams.pop(name, None)
            else:
                params = [str(rnd.randint(1, 5)) for _ in range(npar)]
                if rnd.random() < 0.03:
                    params.append("9")  # a wrong count
                batch.append(m_bind(portal, name, params))
                if rnd.random() < 0.3:
                    batch.append(m_describe("P", portal))
                batch.append(m_execute(portal, rnd.choice([0, 0, 0, 1, 2])))
                if rnd.random() < 0.15:
                    batch.append(m_execute(portal, 0))
            if rnd.random() < 0.1:
                batch.append(m_flush())
            if rnd.random() < 0.6:
                batch.append(m_sync())
        if batch[-1][0][0] not in "SQ":
            batch.append(m_sync())
        batches.append(batch)
    return batches


STMTS_NPAR = {t: n for t, n in STMTS}


def build(d):
    """the message a description (as describe_session writes it) stands for"""
    return {"Q": m_query, "P": m_parse, "B": m_bind, "D": m_describe, "E": m_execute,
            "C": m_close, "S": m_sync, "H": m_flush}[d[0]](*d[1:])


def read_session(path):
    """the session a div-N.txt file holds"""
    batches = []
    with open(path) as f:
        for line in f:
            if line.startswith("batch ") and line.rstrip().endswith(":"):
                batches.append([])
            elif line.startswith("    (") and batches:
                batches[-1].append(build(ast.literal_eval(line.strip())))
            elif batches and not line.strip():
                break
    return batches


def describe_session(batches):
    lines = []
    for i, b in enumerate(batches):
        lines.append("batch %d:" % i)
        for d, _ in b:
            lines.append("    " + repr(d))
    return "\n".join(lines)


SETUP_SQL = """
CREATE TABLE t(id int PRIMARY KEY, v int NOT NULL DEFAULT 0);
INSERT INTO t SELECT g, 0 FROM generate_series(1, 5) g;
CREATE TABLE log(c text);
CREATE SCHEMA s1;
CREATE TABLE s1.st(f text); INSERT INTO s1.st VALUES ('in s1');
CREATE TABLE public.st(f text); INSERT INTO public.st VALUES ('in public');
DO $$ BEGIN CREATE ROLE fzr; EXCEPTION WHEN duplicate_object THEN NULL; END $$;
GRANT USAGE ON SCHEMA s1 TO fzr;
GRANT ALL ON ALL TABLES IN SCHEMA public, s1 TO fzr;
"""


# --- processes -------------------------------------------------------------------------------


PORT_DIR = "/tmp/pgdog-test-ports"
_port_locks = []


def free_port():
    """A port in 20000..29999, locked for this process's life as t/lib/it.c does."""
    try:
        os.mkdir(PORT_DIR, 0o1777)
        os.chmod(PORT_DIR, 0o1777)
    except FileExistsError:
        pass
    start = random.SystemRandom().randrange(10000)
    for i in range(10000):
        p = 20000 + (start + i) % 10000
        f = open(os.path.join(PORT_DIR, "%d.lock" % p), "a")
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
            with socket.socket() as s:
                s.bind(("127.0.0.1", p))
        except OSError:
            f.close()
            continue
        _port_locks.append(f)
        return p
    raise RuntimeError("no free port in 20000..29999")


def wait_port(port, proc, secs=20):
    end = time.monotonic() + secs
    while time.monotonic() < end:
        if proc is not None and proc.poll() is not None:
            return False
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return True
        except OSError:
            time.sleep(0.1)
    return False


class Env:
    def __init__(self, a):
        self.a = a
        self.out = a.out
        os.makedirs(self.out, exist_ok=True)
        os.chmod(self.out, 0o755)
        self.pgdir = os.path.join(self.out, "pg")
        self.pg_port = free_port()
        self.port = free_port()
        self.pgdog = None
        self.admin = {}  # database -> a direct connection for reset_tables

    def psql(self, db, sql):
        subprocess.run(["sh", os.path.join(SRCDIR, "t/pgenv.sh"), "psql", self.pgdir,
                        str(self.pg_port), "-q", "-d", db, "-c", sql], check=True,
                       stdout=subprocess.DEVNULL)

    def start(self):
        subprocess.run(["sh", os.path.join(SRCDIR, "t/pgenv.sh"), "start", self.pgdir,
                        str(self.pg_port), "max_connections = 60"], check=True)
        for db in ("fa", "fb"):
            self.psql("postgres", "CREATE DATABASE %s" % db)
            self.psql(db, SETUP_SQL)
        ini = os.path.join(self.out, "pgdog.ini")
        users = os.path.join(self.out, "users.ini")
        with open(ini, "w") as f:
            f.write("[general]\nhost = 127.0.0.1\nport = %d\nworkers = %d\n"
                    "default_pool_size = %d\nmin_pool_size = 0\nauth_type = trust\n"
                    "pooler_mode = transaction\nprepared_statements = %s\n"
                    "unix_socket_dir = %s\nlog_level = %s\n"
                    "checkout_timeout = 20000\n\n"
                    "[databases.fb]\nhost = 127.0.0.1\nport = %d\ndatabase_name = fb\n"
                    % (self.port, self.a.workers, self.a.pool, self.a.mode, self.out,
                       getattr(self.a, "log_level", "warning"), self.pg_port))
        with open(users, "w") as f:
            f.write("[users.postgres]\ndatabase = fb\npassword = x\n\n"
                    "[admin]\npassword = adm\n")
        self.log = open(os.path.join(self.out, "pgdog.log"), "ab")
        self.pgdog = subprocess.Popen([self.a.pgdog, "-c", ini, "-u", users],
                                      stdout=self.log, stderr=subprocess.STDOUT)
        if not wait_port(self.port, self.pgdog):
            raise RuntimeError("pgdog did not start; see %s/pgdog.log" % self.out)

    def stop(self):
        for c in self.admin.values():
            c.close()
        if self.pgdog is not None and self.pgdog.poll() is None:
            self.pgdog.send_signal(signal.SIGTERM)
            try:
                self.pgdog.wait(15)
            except subprocess.TimeoutExpired:
                self.pgdog.kill()
                self.pgdog.wait()
        subprocess.run(["sh", os.path.join(SRCDIR, "t/pgenv.sh"), "stop", self.pgdir])


# --- noise: other clients on the same pool ---------------------------------------------------

NOISE = [
    "SET work_mem = '2MB'",
    "SET search_path = s1, public",
    "SET TimeZone = 'Asia/Tokyo'",
    "SET application_name = 'noise'",
    "SELECT 1",
    "BEGIN; SELECT pg_sleep(0.002); COMMIT",
    "RESET ALL",
]


def noise_loop(port, stop, rnd, errors, k):
    """one background client: settings, statements, and now and then a pinned server (an
    advisory lock) reset while pinned, with a startup value a RESET changes; a reply that does
    not come within 10 s is an error"""
    while not stop.is_set():
        c = None
        try:
            c = Conn(port, "postgres", "fb", startup={"application_name": "noise%d" % k})
            for _ in range(rnd.randint(5, 40)):
                if stop.is_set():
                    break
                r = rnd.random()
                if r < 0.05:
                    for sql in ("SELECT pg_advisory_lock(%d)" % (9000 + k), "SET work_mem = '3MB'",
                                rnd.choice(["RESET ALL", "RESET application_name"]),
                                "SELECT pg_advisory_unlock_all()"):
                        out, _ = run_batch(c, [m_query(sql)], want=(1, 0))
                        if any(o.startswith("<timeout") for o in out):
                            raise RuntimeError("no ReadyForQuery for %s on a pinned server: %s"
                                               % (sql, out))
                    continue
                if r < 0.5:
                    batch = [m_query(rnd.choice(NOISE))]
                else:
                    text, npar = sql_of(rnd, rnd.randrange(len(STMTS)))
                    if text.startswith(("PREPARE", "DECLARE", "CREATE TEMP", "SELECT pg_adv",
                                        "UPDATE", "INSERT", "SET ROLE", "SELECT set_config",
                                        "SET SESSION", "LISTEN")):
                        continue
                    batch = [m_parse(rnd.choice(["", "n1", "a"]), text),
                             m_bind("", rnd.choice(["", "n1", "a"]),
                                    ["1"] * npar), m_execute(""), m_sync()]
                out, _ = run_batch(c, batch, want=(sum(1 for d, _ in batch if d[0] in "SQ"), 0))
                if any(o.startswith("<timeout") for o in out):
                    raise RuntimeError("no reply within 10 s: %s" % out)
                time.sleep(rnd.random() * 0.003)
            c.close()
        except (OSError, EOFError, RuntimeError) as e:
            errors.append(str(e))
            if c is not None:
                c.close()  # a pinned server goes back to the pool with its client
            time.sleep(0.1)


# --- the comparison --------------------------------------------------------------------------


def run_session(port, db, batches, wants=None):
    c = Conn(port, "postgres", db)
    outs, counts = [], []
    try:
        for i, b in enumerate(batches):
            o, z = run_batch(c, b, want=None if wants is None else wants[i])
            outs.append(o)
            counts.append(z)
    except EOFError:
        outs.append(["<connection closed>"])
    finally:
        c.close()
    return outs, counts


RESET_SQL = "SET lock_timeout = '5s'; DELETE FROM log; UPDATE t SET v = 0"


def reset_tables(env):
    """both databases' tables as SETUP_SQL left them, so that one difference does not make
    every later session differ (direct connections; a lock still held fails after 5 s)"""
    for db in ("fa", "fb"):
        c = env.admin.get(db) or env.admin.setdefault(db, Conn(env.pg_port, "postgres", db))
        out, _ = run_batch(c, [m_query(RESET_SQL)], want=(1, 0))
        if any(o.startswith("E") or o.startswith("<") for o in out):
            raise RuntimeError("resetting %s: %s" % (db, out))


# what a server connection of pgdog's pool must show to a new client, whoever used it before:
# no cursor, SQL prepared statement (pgdog's own are __pgdog_*), advisory lock, temporary table,
# LISTEN, role, session default transaction mode or other SET of another client's (a value other
# than RESET's: PostgreSQL leaves a RESET followed by SET LOCAL of the default value with source
# "session", the same value)
PROBE_SQL = (
    "SELECT (SELECT count(*) FROM pg_cursors) AS cursors, "
    "(SELECT count(*) FROM pg_prepared_statements WHERE name NOT LIKE '\\_\\_pgdog%') AS stmts, "
    "(SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid()) "
    "AS locks, (SELECT count(*) FROM pg_class WHERE relnamespace = pg_my_temp_schema()) AS temps, "
    "(SELECT count(*) FROM pg_listening_channels()) AS listens, current_user, session_user, "
    "current_setting('transaction_isolation') AS iso, "
    "(SELECT string_agg(name || '=' || setting, ',' ORDER BY name) FROM pg_settings "
    "WHERE source = 'session' AND setting IS DISTINCT FROM reset_val) AS sets")


def probe(env):
    """what each of pgdog's server connections shows to new clients (PROBE_SQL), all of the
    pool at once: one client per server, each holding its server in a transaction block"""
    conns = [Conn(env.port, "postgres", "fb") for _ in range(env.a.pool)]
    try:
        for c in conns:
            run_batch(c, [m_query("BEGIN")], want=(1, 0))
        outs = []
        for c in conns:
            out, _ = run_batch(c, [m_query(PROBE_SQL)], want=(1, 0))
            outs.append([o for o in out if o.startswith(("D", "E"))])
        for c in conns:
            run_batch(c, [m_query("COMMIT")], want=(1, 0))
    finally:
        for c in conns:
            c.close()
    return sorted(str(o) for o in outs)


def compare(env, batches):
    """None, or a text describing the first difference"""
    reset_tables(env)
    d_out, counts = run_session(env.pg_port, "fa", batches)
    reset_tables(env)
    p_out, _ = run_session(env.port, "fb", batches, counts + [(0, 0)] * 64)
    seen = probe(env)
    if seen != env.clean:
        return ("after the session a new client on pgdog found another's state: %s\n"
                "  (on a clean pool: %s)" % (seen, env.clean))
    if d_out == p_out:
        return None
    lines = []
    for i in range(max(len(d_out), len(p_out))):
        a = d_out[i] if i < len(d_out) else ["<missing>"]
        b = p_out[i] if i < len(p_out) else ["<missing>"]
        mark = "" if a == b else "   <-- differs"
        lines.append("batch %d%s\n  direct: %s\n  pgdog:  %s" % (i, mark, a, b))
    return "\n".join(lines)


KNOWN = [
    # README: a re-prepare on another server takes the transaction's snapshot
    re.compile(r"25001"),
    # README: an unnamed PREPARE executed again names pgdog's statement in its 42P05
    re.compile(r"<pgdog-name>"),
    # README: a statement prepared again in an aborted block: 25P02 before a Bind's 08P01
    re.compile(r"direct: .*08P01: bind message supplies.*\n  pgdog: .*25P02"),
]


def is_desc_of_fetch(first, batches):
    """README: a FETCH prepared as a statement is described as its cursor is at the Describe,
    not at the Parse: in the first differing batch only RowDescription/NoData differ, and the
    session prepares a FETCH"""
    if not any(m[0] == "P" and "FETCH" in str(m[2]) for b in batches for m, _ in b):
        return False
    try:
        d_out = ast.literal_eval(first.split("\n")[1].split("direct: ", 1)[1])
        p_out = ast.literal_eval(first.split("\n")[2].split("pgdog:  ", 1)[1])
    except (IndexError, ValueError, SyntaxError):
        return False
    return len(d_out) == len(p_out) and all(
        x == y or (x[:1] in ("n", "T") and y[:1] in ("n", "T")) for x, y in zip(d_out, p_out))


def is_prepare_after_dealloc_all(first, batches):
    """README: a Query that runs DEALLOCATE ALL before a PREPARE loses the name that PREPARE
    made: in the first differing batch pgdog says 26000 for such a name, or runs a PREPARE of
    it where PostgreSQL says 42P05"""
    names = set()
    for b in batches:
        for m, _ in b:
            if m[0] == "Q":
                found = re.search(r"DEALLOCATE ALL;.*\bPREPARE (\w+)", str(m[1]), re.I)
                if found:
                    names.add(found.group(1))
    lines = first.split("\n")
    if len(lines) < 3:
        return False
    direct, pgdog = lines[1], lines[2]
    for n in names:
        gone = '26000: prepared statement "%s" does not exist' % n
        dup = '42P05: prepared statement "%s" already exists' % n
        if (gone in pgdog and gone not in direct) or (dup in direct and dup not in pgdog):
            return True
    return False


def is_unnamed_dealloc_again(first, batches):
    """README: with prepared_statements = full an unnamed statement whose text is SQL DEALLOCATE
    is not prepared again on another server: bound or described again it gets 26000 for the
    unnamed statement, where PostgreSQL runs (or describes) the DEALLOCATE"""
    if not any(m[0] == "P" and m[1] == "" and str(m[2]).upper().startswith("DEALLOCATE")
               for b in batches for m, _ in b):
        return False
    lines = first.split("\n")
    gone = "26000: unnamed prepared statement does not exist"
    return len(lines) >= 3 and gone in lines[2] and gone not in lines[1]


def is_known(d, batches):
    """the first differing batch of compare()'s text shows a limitation KNOWN lists (the
    batches after it may differ because of it: a transaction it failed, a server it kept)"""
    lines = d.split("\n")
    diffs = ["\n".join(lines[i:i + 3]) for i, ln in enumerate(lines) if ln.endswith("differs")]
    return bool(diffs) and (any(k.search(diffs[0]) for k in KNOWN) or
                            is_desc_of_fetch(diffs[0], batches) or
                            is_prepare_after_dealloc_all(diffs[0], batches) or
                            is_unnamed_dealloc_again(diffs[0], batches))


def differs(env, batches):
    """the session differs twice in a row (the other clients make a run vary)"""
    return compare(env, batches) is not None and compare(env, batches) is not None


def shrink(env, batches, tries=60):
    """drop batches, then messages, while the session still differs"""
    cur = batches
    changed = True
    while changed and tries > 0:
        changed = False
        for i in range(len(cur)):
            cand = cur[:i] + cur[i + 1:]
            if not cand:
                continue
            tries -= 1
            if differs(env, cand):
                cur, changed = cand, True
                break
        if changed:
            continue
        for i, b in enumerate(cur):
            for j in range(len(b)):
                nb = b[:j] + b[j + 1:]
                if not nb or nb[-1][0][0] not in "SQ":
                    continue
                cand = cur[:i] + [nb] + cur[i + 1:]
                tries -= 1
                if differs(env, cand):
                    cur, changed = cand, True
                    break
            if changed or tries <= 0:
                break
    return cur


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--pgdog", required=True, help="the pgdog binary")
    ap.add_argument("--mode", default="extended", choices=["extended", "full", "disabled"])
    ap.add_argument("--seconds", type=float, default=300)
    ap.add_argument("--seed", type=int, default=None)
    ap.add_argument("--noise", type=int, default=2, help="background clients")
    ap.add_argument("--pool", type=int, default=2, help="pgdog's pool_size")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--out", default=None)
    ap.add_argument("--shrink", action="store_true")
    ap.add_argument("--skip-known", action="store_true")
    ap.add_argument("--log-level", default="warning", help="pgdog's, in OUT/pgdog.log")
    ap.add_argument("--max-divs", type=int, default=5)
    ap.add_argument("--replay", metavar="DIV_FILE",
                    help="run the session of a div-N.txt (with --seconds of tries) instead")
    a = ap.parse_args()
    if a.seed is None:
        a.seed = int(time.time())
    if a.out is None:
        a.out = "/tmp/pgdiff-%d" % a.seed
    a.pgdog = os.path.abspath(a.pgdog)
    # SIGTERM (timeout(1), a CI limit) unwinds through the finally below: what was started stops
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    env = Env(a)
    stop = threading.Event()
    noise_err = []
    threads = []
    ndiv = ncase = 0
    try:
        env.start()
        env.clean = probe(env)
        for k in range(a.noise):
            th = threading.Thread(target=noise_loop,
                                  args=(env.port, stop, random.Random(a.seed * 7 + k), noise_err,
                                        k),
                                  daemon=True)
            th.start()
            threads.append(th)
        rnd = random.Random(a.seed)
        end = time.monotonic() + a.seconds
        while time.monotonic() < end and ndiv < a.max_divs:
            batches = read_session(a.replay) if a.replay else gen_session(rnd, a.mode)
            ncase += 1
            d = compare(env, batches)
            if d is None:
                continue
            if a.skip_known and is_known(d, batches):
                continue
            text = "%s\n\n%s\n" % (describe_session(batches), d)
            if a.shrink:
                small = shrink(env, batches)
                ds = compare(env, small) if small is not batches else None
                if ds is not None:
                    text = "%s\n\n%s\n\nfrom the session:\n\n%s" % (
                        describe_session(small), ds, text)
            ndiv += 1
            path = os.path.join(a.out, "div-%d.txt" % ndiv)
            with open(path, "w") as f:
                f.write("seed %d case %d mode %s\n\n%s" % (a.seed, ncase, a.mode, text))
            print("difference %d (case %d): %s" % (ndiv, ncase, path), flush=True)
    finally:
        stop.set()
        for th in threads:
            th.join(5)
        if env.pgdog is not None and env.pgdog.poll() is not None:
            print("pgdog exited with %s" % env.pgdog.returncode)
            ndiv += 1
        env.stop()
    print("pgdiff: seed %d mode %s: %d sessions, %d differences, %d noise errors%s" %
          (a.seed, a.mode, ncase, ndiv, len(noise_err),
           (" (first: %s)" % noise_err[0]) if noise_err else ""))
    return 1 if ndiv or noise_err else 0


if __name__ == "__main__":
    sys.exit(main())
