// DrvJdbc.java: pgjdbc through pgdog (t/drivers/run.sh jdbc compiles and runs it).
// PreparedStatement with prepareThreshold=1 makes pgjdbc use server-side named
// statements (S_1, S_2, ...: the same names on every connection) from the first
// execution; Statement.execute without parameters uses the simple protocol
// only for multi-statement strings, else an unnamed extended statement.
import java.sql.*;
import java.util.*;
import java.util.concurrent.*;

public class DrvJdbc {
    static final Map<String, String> ENV = System.getenv();
    static final int CLIENTS = Integer.parseInt(ENV.getOrDefault("DRV_CLIENTS", "10"));
    static final int ITERATIONS = Integer.parseInt(ENV.getOrDefault("DRV_ITERATIONS", "30"));
    static final String DEFAULT_SEARCH_PATH = "\"$user\", public";
    static final String SETTINGS_SQL = "SELECT current_setting('application_name'), current_setting('search_path'), "
            + "current_setting('statement_timeout'), current_setting('myapp.client_id', true)";
    static int failed = 0;

    static class CheckFailed extends Exception {
        CheckFailed(String m) { super(m); }
    }

    interface Body { void run() throws Exception; }
    interface ClientBody { void run(int i) throws Exception; }

    static void eq(Object got, Object want, String what) throws CheckFailed {
        if (!Objects.equals(got, want))
            throw new CheckFailed(what + ": got " + got + ", expected " + want);
    }

    static boolean check(String name, Body b) {
        long t0 = System.nanoTime();
        ExecutorService ex = Executors.newSingleThreadExecutor();
        try {
            Future<?> f = ex.submit(() -> { b.run(); return null; });
            f.get(60, TimeUnit.SECONDS);
            System.out.printf("ok - %s (%.1f s)%n", name, (System.nanoTime() - t0) / 1e9);
            return true;
        } catch (TimeoutException e) {
            failed++;
            System.out.println("not ok - " + name + ": timed out after 60 s");
        } catch (ExecutionException e) {
            failed++;
            Throwable c = e.getCause();
            if (c instanceof CheckFailed)
                System.out.println("not ok - " + name + ": " + c.getMessage());
            else {
                String st = c instanceof SQLException ? ((SQLException) c).getSQLState() + " " : "";
                System.out.println("not ok - " + name + ": " + st + c.getClass().getSimpleName() + ": " + c.getMessage());
                c.printStackTrace(System.out);
            }
        } catch (InterruptedException e) {
            failed++;
            System.out.println("not ok - " + name + ": interrupted");
        } finally {
            ex.shutdownNow();
            System.out.flush();
        }
        return false;
    }

    static Connection connect(String app, String password, int prepareThreshold) throws SQLException {
        Properties p = new Properties();
        p.setProperty("user", ENV.getOrDefault("PGDOG_TEST_USER", "app"));
        p.setProperty("password", password != null ? password : ENV.getOrDefault("PGDOG_TEST_PASSWORD", "app_pw"));
        p.setProperty("ApplicationName", app);
        // sends ApplicationName in the startup packet (older servers get a SET after login)
        p.setProperty("assumeMinServerVersion", "10");
        p.setProperty("connectTimeout", "10");
        p.setProperty("socketTimeout", "60");
        if (prepareThreshold >= 0)
            p.setProperty("prepareThreshold", Integer.toString(prepareThreshold));
        String url = "jdbc:postgresql://" + ENV.getOrDefault("PGDOG_TEST_HOST", "127.0.0.1") + ":"
                + ENV.getOrDefault("PGDOG_TEST_PORT", "6432") + "/" + ENV.getOrDefault("PGDOG_TEST_DB", "app");
        return DriverManager.getConnection(url, p);
    }

    static Connection connect(String app) throws SQLException { return connect(app, null, -1); }

    /* all rows as lists of strings */
    static List<List<String>> rows(Connection c, String sql, Object... params) throws SQLException {
        try (PreparedStatement ps = c.prepareStatement(sql)) {
            for (int i = 0; i < params.length; i++) ps.setObject(i + 1, params[i]);
            List<List<String>> out = new ArrayList<>();
            if (!ps.execute()) return out;
            try (ResultSet rs = ps.getResultSet()) {
                int n = rs.getMetaData().getColumnCount();
                while (rs.next()) {
                    List<String> r = new ArrayList<>();
                    for (int i = 1; i <= n; i++) r.add(rs.getString(i));
                    out.add(r);
                }
            }
            return out;
        }
    }

    static String one(Connection c, String sql, Object... params) throws SQLException {
        return rows(c, sql, params).get(0).get(0);
    }

    static void exec(Connection c, String sql) throws SQLException {
        try (Statement s = c.createStatement()) { s.execute(sql); }
    }

    static List<String> settings(Connection c) throws SQLException {
        List<String> r = rows(c, SETTINGS_SQL).get(0);
        if (r.get(3) == null) r.set(3, "");
        return r;
    }

    static void expectError(Body b, String code, String what) throws Exception {
        try {
            b.run();
        } catch (SQLException e) {
            eq(e.getSQLState(), code, "SQLSTATE of " + what);
            return;
        }
        throw new CheckFailed(what + " did not fail");
    }

    static void allClients(int n, ClientBody body) throws Exception {
        ExecutorService ex = Executors.newFixedThreadPool(n);
        List<Future<?>> fs = new ArrayList<>();
        for (int i = 0; i < n; i++) {
            final int id = i;
            fs.add(ex.submit(() -> { body.run(id); return null; }));
        }
        List<String> errs = new ArrayList<>();
        for (int i = 0; i < n; i++) {
            try {
                fs.get(i).get(90, TimeUnit.SECONDS);
            } catch (ExecutionException e) {
                errs.add("client " + i + ": " + e.getCause().getMessage());
            }
        }
        ex.shutdownNow();
        if (!errs.isEmpty())
            throw new CheckFailed(String.join("; ", errs.subList(0, Math.min(3, errs.size())))
                    + (errs.size() > 3 ? " (and " + (errs.size() - 3) + " more)" : ""));
    }

    static List<String> L(String... s) { return Arrays.asList(s); }

    public static void main(String[] args) throws Exception {
        final Connection[] mm = new Connection[1];
        boolean ok = check("connect with SCRAM (and a wrong password is refused)", () -> {
            try {
                connect("drv_bad", "wrong_pw", -1).close();
                throw new CheckFailed("a wrong password was accepted");
            } catch (SQLException e) {
                /* refused */
            }
            mm[0] = connect("drv_main");
            eq(rows(mm[0], "SELECT current_user, current_setting('application_name')"), List.of(L("app", "drv_main")), "current_user, application_name");
        });
        if (!ok) {
            System.out.println("done");
            System.exit(1);
        }
        final Connection m = mm[0];

        check("simple queries", () -> {
            eq(one(m, "SELECT 1 + 1"), "2", "SELECT 1 + 1");
            long sum = 0;
            for (List<String> r : rows(m, "SELECT g FROM generate_series(1, 1000) g")) sum += Long.parseLong(r.get(0));
            eq(sum, 500500L, "sum of generate_series");
            exec(m, "SELECT 1; SELECT 2");
        });

        check("parameterized queries", () -> {
            eq(rows(m, "SELECT ?::int + ?::int, ?::text, ?::text IS NULL", 2, 3, "it's; --", null), List.of(L("5", "it's; --", "t")), "parameters");
            for (int i = 0; i < 20; i++) eq(one(m, "SELECT ?::int * 3", i), Integer.toString(i * 3), "parameter " + i);
        });

        check("create tables", () -> {
            exec(m, "DROP TABLE IF EXISTS drv_items; DROP TABLE IF EXISTS drv_log;"
                    + "CREATE TABLE drv_items (id int PRIMARY KEY, v int NOT NULL, who text);"
                    + "CREATE TABLE drv_log (client int NOT NULL, iter int NOT NULL)");
            for (int i = -1; i < CLIENTS; i++) rows(m, "INSERT INTO drv_items VALUES (?, 0, 'init')", i);
            eq(one(m, "SELECT count(*) FROM drv_items"), Integer.toString(CLIENTS + 1), "rows");
        });

        check("transaction commit", () -> {
            m.setAutoCommit(false);
            exec(m, "UPDATE drv_items SET v = 10, who = 'main' WHERE id = -1");
            eq(one(m, "SELECT v FROM drv_items WHERE id = -1"), "10", "inside");
            m.commit();
            m.setAutoCommit(true);
            try (Connection other = connect("drv_other")) {
                eq(rows(other, "SELECT v, who FROM drv_items WHERE id = -1"), List.of(L("10", "main")), "committed row seen by another connection");
            }
        });

        check("transaction rollback", () -> {
            m.setAutoCommit(false);
            exec(m, "UPDATE drv_items SET v = 20 WHERE id = -1");
            exec(m, "INSERT INTO drv_items VALUES (1000, 1, 'rolled back')");
            eq(one(m, "SELECT v FROM drv_items WHERE id = -1"), "20", "inside");
            m.rollback();
            m.setAutoCommit(true);
            eq(one(m, "SELECT v FROM drv_items WHERE id = -1"), "10", "after rollback");
            eq(one(m, "SELECT count(*) FROM drv_items WHERE id = 1000"), "0", "rolled-back insert");
        });

        check("error inside a transaction, rollback, reuse", () -> {
            m.setAutoCommit(false);
            exec(m, "INSERT INTO drv_items VALUES (1001, 1, 'error')");
            expectError(() -> one(m, "SELECT 1 / ?::int", 0), "22012", "1 / 0");
            expectError(() -> one(m, "SELECT 1"), "25P02", "a query in a failed transaction");
            m.rollback();
            m.setAutoCommit(true);
            eq(one(m, "SELECT 1"), "1", "the connection after ROLLBACK");
            eq(one(m, "SELECT count(*) FROM drv_items WHERE id = 1001"), "0", "insert before the error");
            m.setAutoCommit(false);
            exec(m, "UPDATE drv_items SET v = v + 1 WHERE id = -1");
            m.commit();
            m.setAutoCommit(true);
            eq(one(m, "SELECT v FROM drv_items WHERE id = -1"), "11", "commit after the error");
        });

        final List<String> mainSettings = L("drv_main_set", "drv_s_main, public", "17s", "main");
        check("SET persists across transactions and stays on its connection", () -> {
            exec(m, "SET application_name = 'drv_main_set'");
            exec(m, "SET search_path TO drv_s_main, public");
            exec(m, "SET statement_timeout = '17s'");
            exec(m, "SET myapp.client_id = 'main'");
            try (Connection other = connect("drv_other")) {
                for (int i = 0; i < 6; i++) {
                    eq(settings(other), L("drv_other", DEFAULT_SEARCH_PATH, "0", ""), "settings of another connection, round " + i);
                    m.setAutoCommit(false);
                    eq(settings(m), mainSettings, "settings in transaction " + i);
                    exec(m, "UPDATE drv_items SET v = v + 1 WHERE id = -1");
                    m.commit();
                    m.setAutoCommit(true);
                    eq(settings(m), mainSettings, "settings after transaction " + i);
                }
            }
            exec(m, "SET statement_timeout = '200ms'");
            expectError(() -> exec(m, "SELECT pg_sleep(2)"), "57014", "pg_sleep(2) with a 200ms timeout");
            exec(m, "SET statement_timeout = '17s'");
            eq(settings(m), mainSettings, "settings after the timeout");
        });

        check("SET and SET LOCAL inside transactions that roll back and commit", () -> {
            m.setAutoCommit(false);
            exec(m, "SET application_name = 'drv_rolled_back'");
            exec(m, "SET LOCAL statement_timeout = '3s'");
            eq(one(m, "SHOW statement_timeout"), "3s", "SET LOCAL inside a transaction");
            m.rollback();
            m.setAutoCommit(true);
            eq(settings(m), mainSettings, "settings after ROLLBACK");
            m.setAutoCommit(false);
            exec(m, "SET LOCAL statement_timeout = '4s'");
            exec(m, "SET application_name = 'drv_committed'");
            m.commit();
            m.setAutoCommit(true);
            eq(settings(m), L("drv_committed", "drv_s_main, public", "17s", "main"), "settings after COMMIT");
        });

        check("setTransactionIsolation stays on its connection", () -> {
            // pgjdbc runs SET SESSION CHARACTERISTICS AS TRANSACTION ISOLATION LEVEL ...
            m.setTransactionIsolation(Connection.TRANSACTION_SERIALIZABLE);
            try (Connection other = connect("drv_other")) {
                for (int i = 0; i < 4; i++) {
                    eq(one(other, "SHOW transaction_isolation"), "read committed",
                       "isolation of another connection, round " + i);
                    eq(one(m, "SHOW transaction_isolation"), "serializable", "isolation, round " + i);
                    m.setAutoCommit(false);
                    eq(one(m, "SHOW transaction_isolation"), "serializable", "in a transaction, round " + i);
                    m.commit();
                    m.setAutoCommit(true);
                }
                m.setTransactionIsolation(Connection.TRANSACTION_READ_COMMITTED);
                eq(one(other, "SHOW transaction_isolation"), "read committed", "another connection");
                eq(one(m, "SHOW transaction_isolation"), "read committed", "isolation set back");
            }
        });

        check("RESET and RESET ALL restore the startup parameters", () -> {
            exec(m, "SET application_name = 'drv_before_reset'");
            exec(m, "RESET application_name");
            eq(one(m, "SHOW application_name"), "drv_main", "RESET application_name");
            exec(m, "SET application_name = 'x'; SET search_path TO x, public; SET statement_timeout = '17s'");
            exec(m, "RESET ALL");
            for (int i = 0; i < 3; i++)
                eq(settings(m).subList(0, 3), L("drv_main", DEFAULT_SEARCH_PATH, "0"), "settings after RESET ALL, query " + i);
        });
        exec(m, "RESET ALL; SET application_name = 'drv_main'");

        check(CLIENTS + " connections x " + ITERATIONS + " iterations read back their own writes and settings", () -> {
            allClients(CLIENTS, (i) -> {
                try (Connection c = connect("drv_w" + i)) {
                    List<String> want = L("drv_w" + i, DEFAULT_SEARCH_PATH, "0", "");
                    if (i > 0) {
                        exec(c, "SET application_name = 'drv_set_w" + i + "'");
                        exec(c, "SET search_path TO drv_s" + i + ", public");
                        exec(c, "SET statement_timeout = '" + (100 + i) + "s'");
                        exec(c, "SET myapp.client_id = '" + i + "'");
                        want = L("drv_set_w" + i, "drv_s" + i + ", public", (100 + i) + "s", Integer.toString(i));
                    }
                    int v = 0, committed = 0;
                    for (int it = 0; it < ITERATIONS; it++) {
                        c.setAutoCommit(false);
                        eq(one(c, "UPDATE drv_items SET v = v + 1, who = ? WHERE id = ? RETURNING v", "w" + i, i), Integer.toString(v + 1), "iteration " + it + ": UPDATE ... RETURNING");
                        rows(c, "INSERT INTO drv_log VALUES (?, ?)", i, it);
                        eq(settings(c), want, "iteration " + it + ": settings in the transaction");
                        if (it % 3 == 2) {
                            c.rollback();
                        } else {
                            c.commit();
                            v++;
                            committed++;
                        }
                        c.setAutoCommit(true);
                        eq(rows(c, "SELECT v, who FROM drv_items WHERE id = ?", i), List.of(L(Integer.toString(v), v > 0 ? "w" + i : "init")), "iteration " + it + ": own row");
                        eq(settings(c), want, "iteration " + it + ": settings");
                    }
                    eq(one(c, "SELECT count(*) FROM drv_log WHERE client = ?", i), Integer.toString(committed), "own log rows");
                }
            });
            eq(one(m, "SELECT count(*) FROM drv_log"), Integer.toString(CLIENTS * (ITERATIONS - ITERATIONS / 3)), "log rows of all clients");
        });

        check("prepared statements (prepareThreshold=1), reused across transactions", () -> {
            try (Connection p = connect("drv_prep", null, 1); Connection other = connect("drv_other");
                 PreparedStatement ps = p.prepareStatement("SELECT v, ?::int * 2 FROM drv_items WHERE id = -1")) {
                String v0 = one(p, "SELECT v FROM drv_items WHERE id = -1");
                for (int i = 0; i < 20; i++) {
                    if (i % 5 == 4) p.setAutoCommit(false);
                    ps.setInt(1, i);
                    try (ResultSet rs = ps.executeQuery()) {
                        rs.next();
                        eq(L(rs.getString(1), rs.getString(2)), L(v0, Integer.toString(i * 2)), "prepared statement, execution " + i);
                    }
                    if (i % 5 == 4) {
                        p.commit();
                        p.setAutoCommit(true);
                    }
                    eq(ps.unwrap(org.postgresql.PGStatement.class).isUseServerPrepare(), true, "server-side prepare");
                    eq(one(other, "SELECT ?::int", i), Integer.toString(i), "another connection in between");
                }
            }
        });

        check("prepared statements with the same name on 4 connections stay apart", () -> {
            allClients(4, (i) -> {
                try (Connection c = connect("drv_p" + i, null, 1);
                     PreparedStatement ps = c.prepareStatement("SELECT ?::int + " + (1000 * i))) {
                    for (int it = 0; it < ITERATIONS; it++) {
                        ps.setInt(1, it);
                        try (ResultSet rs = ps.executeQuery()) {
                            rs.next();
                            eq(rs.getInt(1), it + 1000 * i, "iteration " + it + ": own prepared statement");
                        }
                    }
                }
            });
        });

        check("a new connection sees only defaults", () -> {
            m.close();
            try (Connection c = connect("drv_last")) {
                eq(settings(c), L("drv_last", DEFAULT_SEARCH_PATH, "0", ""), "settings of a new connection");
            }
        });
        System.out.println("done");
        System.out.flush();
        System.exit(failed == 0 ? 0 : 1);
    }
}
