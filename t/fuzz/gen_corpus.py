#!/usr/bin/env python3
"""gen_corpus.py: writes the seed corpora t/fuzz/corpus/pgw/* and t/fuzz/corpus/startup/*.

Run from anywhere: python3 t/fuzz/gen_corpus.py. The generated files are
committed; rerun this only to change the seeds. Bytes follow the PostgreSQL
protocol documentation (big-endian Int32/Int16, NUL-terminated strings).
"""
import os
import struct

HERE = os.path.dirname(os.path.abspath(__file__))


def i32(v):
    return struct.pack(">i", v)


def u32(v):
    return struct.pack(">I", v)


def i16(v):
    return struct.pack(">h", v)


def cstr(s):
    return s.encode() + b"\0"


def msg(t, body=b""):
    return t.encode() + u32(len(body) + 4) + body


def pkt(code, body=b""):
    return u32(len(body) + 8) + u32(code) + body


def pairs(*kv):
    return b"".join(cstr(x) for x in kv) + b"\0"


def text_field(name):
    return cstr(name) + u32(0) + i16(0) + u32(25) + i16(-1) + i32(-1) + i16(0)


PGW = {
    "backend_login": msg("R", u32(0)) + msg("S", cstr("server_version") + cstr("16.2"))
    + msg("S", cstr("client_encoding") + cstr("UTF8")) + msg("K", u32(12345) + u32(0xDEADBEEF))
    + msg("Z", b"I"),
    "auth_sasl": msg("R", u32(10) + cstr("SCRAM-SHA-256") + b"\0"),
    "auth_md5": msg("R", u32(5) + b"SALT"),
    "auth_sasl_continue": msg("R", u32(11) + b"r=abc,s=c2FsdA==,i=4096"),
    "error": msg("E", b"SFATAL\0VFATAL\0C28P01\0Mpassword authentication failed\0Fauth.c\0L323\0\0"),
    "notice_detail": msg("N", b"SWARNING\0VWARNING\0C01000\0Mm\0Dsome detail\0Hhint\0\0"),
    "query": msg("Q", cstr("SELECT 1")),
    "query_empty": msg("Q", b"\0") + msg("X"),
    "password": msg("p", cstr("md5a3556571e93b0d20722ba62be61e8c2d")),
    "sasl_initial": msg("p", cstr("SCRAM-SHA-256") + u32(32) + b"n,,n=,r=rOprNGfwEbeRWgbNEkqO%hvY"),
    "sasl_initial_none": msg("p", cstr("SCRAM-SHA-256") + i32(-1)),
    "rows": msg("T", i16(2) + text_field("id") + text_field("name"))
    + msg("D", i16(2) + i32(1) + b"1" + i32(-1)) + msg("C", cstr("SELECT 1")) + msg("Z", b"T"),
    "extended": msg("P", cstr("s1") + cstr("SELECT $1") + i16(0))
    + msg("B", cstr("") + cstr("s1") + i16(0) + i16(1) + i32(1) + b"7" + i16(0))
    + msg("D", b"P" + cstr("")) + msg("E", cstr("") + i32(0)) + msg("S"),
    "negotiate": msg("v", u32(0) + u32(1) + cstr("_pq_.x")),
    "truncated": msg("Q", cstr("SELECT 1"))[:9],
    "bad_len": b"Q" + u32(3) + b"xyz",
    "huge_len": b"d" + u32(0xFFFFFFFF) + b"abc",
    "empty": b"",
}

LIBPQ = pairs("user", "bob", "database", "app", "application_name", "psql",
              "client_encoding", "UTF8", "options", "-c search_path=s1 -c x=y")
STARTUP = {
    "libpq": pkt(196608, LIBPQ),
    "user_only": pkt(196608, pairs("user", "alice")),
    "replication": pkt(196608, pairs("user", "rep", "replication", "database")),
    "ssl_then_startup": pkt(80877103) + pkt(196608, pairs("user", "bob")),
    "gssenc": pkt(80877104),
    "cancel": pkt(80877102, u32(12345) + u32(0xCAFEBABE)),
    "cancel_short": pkt(80877102, u32(1)),
    "v3_2_pq": pkt(3 << 16 | 2, pairs("user", "bob", "_pq_.something", "on")),
    "v2": pkt(2 << 16, pairs("user", "bob")),
    "no_user": pkt(196608, pairs("database", "app")),
    "bad_terminator": pkt(196608, b"user\0bob\0"),
    "empty_name": pkt(196608, b"user\0bob\0\0v\0\0"),
    "short_len": u32(4) + u32(196608),
    "partial": pkt(196608, LIBPQ)[:20],
}


def write(name, files):
    d = os.path.join(HERE, "corpus", name)
    os.makedirs(d, exist_ok=True)
    for fname, data in files.items():
        with open(os.path.join(d, fname), "wb") as f:
            f.write(data)


write("pgw", PGW)
write("startup", STARTUP)
