// drv_node.js: node-postgres (pg 8) through pgdog (t/drivers/run.sh node).
// client.query(text) uses the simple protocol, client.query(text, values)
// an unnamed extended-protocol statement, and {name, text, values} a named
// prepared statement that pg prepares once per connection.
'use strict';
const { Client } = require('pg');

const env = process.env;
const CLIENTS = parseInt(env.DRV_CLIENTS || '10', 10);
const ITERATIONS = parseInt(env.DRV_ITERATIONS || '30', 10);
const DEFAULT_SEARCH_PATH = '"$user", public';
const SETTINGS_SQL = "SELECT current_setting('application_name') AS a, current_setting('search_path') AS s, " +
  "current_setting('statement_timeout') AS t, current_setting('myapp.client_id', true) AS c";
let failed = 0;

class CheckFailed extends Error {}

function eq(got, want, what) {
  const g = JSON.stringify(got), w = JSON.stringify(want);
  if (g !== w) throw new CheckFailed(`${what}: got ${g}, expected ${w}`);
}

async function check(name, fn) {
  const t0 = Date.now();
  let timer;
  try {
    await Promise.race([fn(), new Promise((_, rej) => { timer = setTimeout(() => rej(new CheckFailed('timed out after 60 s')), 60000); })]);
  } catch (e) {
    failed++;
    console.log(`not ok - ${name}: ${e instanceof CheckFailed ? '' : (e.code ? e.code + ' ' : '') + e.constructor.name + ': '}${e.message}`);
    if (!(e instanceof CheckFailed)) console.log(e.stack);
    return false;
  } finally {
    clearTimeout(timer);
  }
  console.log(`ok - ${name} (${((Date.now() - t0) / 1000).toFixed(1)} s)`);
  return true;
}

async function connect(app, password) {
  const c = new Client({
    host: env.PGDOG_TEST_HOST || '127.0.0.1', port: parseInt(env.PGDOG_TEST_PORT || '6432', 10),
    user: env.PGDOG_TEST_USER || 'app', password: password || env.PGDOG_TEST_PASSWORD || 'app_pw',
    database: env.PGDOG_TEST_DB || 'app', application_name: app, connectionTimeoutMillis: 10000,
  });
  c.on('error', () => {});
  await c.connect();
  return c;
}

async function q(c, text, values) { return (await c.query(text, values)).rows; }
async function one(c, text, values) { const r = await q(c, text, values); return Object.values(r[0])[0]; }
async function settings(c) {
  const r = (await q(c, SETTINGS_SQL))[0];
  return [r.a, r.s, r.t, r.c || ''];
}
async function expectError(p, code, what) {
  try { await p; } catch (e) { eq(e.code, code, 'SQLSTATE of ' + what); return; }
  throw new CheckFailed(what + ' did not fail');
}
async function allClients(n, fn) {
  const res = await Promise.allSettled([...Array(n).keys()].map(fn));
  const errs = res.map((r, i) => r.status === 'rejected' ? `client ${i}: ${r.reason.message}` : null).filter(Boolean);
  if (errs.length) throw new CheckFailed(errs.slice(0, 3).join('; ') + (errs.length > 3 ? ` (and ${errs.length - 3} more)` : ''));
}

async function main() {
  let m;
  const ok = await check('connect with SCRAM (and a wrong password is refused)', async () => {
    let bad = null;
    try { bad = await connect('drv_bad', 'wrong_pw'); } catch (e) { /* refused */ }
    if (bad) { await bad.end(); throw new CheckFailed('a wrong password was accepted'); }
    m = await connect('drv_main');
    eq(await q(m, "SELECT current_user AS u, current_setting('application_name') AS a"), [{ u: 'app', a: 'drv_main' }], 'current_user, application_name');
  });
  if (!ok) { console.log('done'); process.exit(1); }

  await check('simple queries', async () => {
    eq(await one(m, 'SELECT 1 + 1 AS x'), 2, 'SELECT 1 + 1');
    const rows = await q(m, 'SELECT g FROM generate_series(1, 1000) g');
    eq(rows.reduce((s, r) => s + r.g, 0), 500500, 'sum of generate_series');
    const multi = await m.query('SELECT 1 AS a; SELECT 2 AS b');
    eq(multi.map((r) => r.rows[0]), [{ a: 1 }, { b: 2 }], 'two statements in one query');
  });

  await check('parameterized queries', async () => {
    eq(await q(m, 'SELECT $1::int + $2::int AS s, $3::text AS t, $4::text IS NULL AS n', [2, 3, "it's; --", null]),
      [{ s: 5, t: "it's; --", n: true }], 'parameters');
    for (let i = 0; i < 20; i++) eq(await one(m, 'SELECT $1::int * 3 AS x', [i]), i * 3, `parameter ${i}`);
  });

  await check('create tables', async () => {
    await m.query('DROP TABLE IF EXISTS drv_items; DROP TABLE IF EXISTS drv_log;' +
      'CREATE TABLE drv_items (id int PRIMARY KEY, v int NOT NULL, who text);' +
      'CREATE TABLE drv_log (client int NOT NULL, iter int NOT NULL)');
    for (let i = -1; i < CLIENTS; i++) await m.query("INSERT INTO drv_items VALUES ($1, 0, 'init')", [i]);
    eq(await one(m, 'SELECT count(*)::int FROM drv_items'), CLIENTS + 1, 'rows');
  });

  await check('transaction commit', async () => {
    await m.query('BEGIN');
    await m.query("UPDATE drv_items SET v = 10, who = 'main' WHERE id = -1");
    eq(await one(m, 'SELECT v FROM drv_items WHERE id = -1'), 10, 'inside');
    await m.query('COMMIT');
    const other = await connect('drv_other');
    eq(await q(other, 'SELECT v, who FROM drv_items WHERE id = -1'), [{ v: 10, who: 'main' }], 'committed row seen by another connection');
    await other.end();
  });

  await check('transaction rollback', async () => {
    await m.query('BEGIN');
    await m.query('UPDATE drv_items SET v = 20 WHERE id = -1');
    await m.query("INSERT INTO drv_items VALUES (1000, 1, 'rolled back')");
    eq(await one(m, 'SELECT v FROM drv_items WHERE id = -1'), 20, 'inside');
    await m.query('ROLLBACK');
    eq(await one(m, 'SELECT v FROM drv_items WHERE id = -1'), 10, 'after rollback');
    eq(await one(m, 'SELECT count(*)::int FROM drv_items WHERE id = 1000'), 0, 'rolled-back insert');
  });

  await check('error inside a transaction, rollback, reuse', async () => {
    await m.query('BEGIN');
    await m.query("INSERT INTO drv_items VALUES (1001, 1, 'error')");
    await expectError(m.query('SELECT 1 / $1::int', [0]), '22012', '1 / 0');
    await expectError(m.query('SELECT 1'), '25P02', 'a query in a failed transaction');
    await m.query('ROLLBACK');
    eq(await one(m, 'SELECT 1 AS x'), 1, 'the connection after ROLLBACK');
    eq(await one(m, 'SELECT count(*)::int FROM drv_items WHERE id = 1001'), 0, 'insert before the error');
    await m.query('BEGIN');
    await m.query('UPDATE drv_items SET v = v + 1 WHERE id = -1');
    await m.query('COMMIT');
    eq(await one(m, 'SELECT v FROM drv_items WHERE id = -1'), 11, 'commit after the error');
  });

  const mainSettings = ['drv_main_set', 'drv_s_main, public', '17s', 'main'];
  await check('SET persists across transactions and stays on its connection', async () => {
    await m.query("SET application_name = 'drv_main_set'");
    await m.query('SET search_path TO drv_s_main, public');
    await m.query("SET statement_timeout = '17s'");
    await m.query("SET myapp.client_id = 'main'");
    const other = await connect('drv_other');
    for (let i = 0; i < 6; i++) {
      eq(await settings(other), ['drv_other', DEFAULT_SEARCH_PATH, '0', ''], `settings of another connection, round ${i}`);
      await m.query('BEGIN');
      eq(await settings(m), mainSettings, `settings in transaction ${i}`);
      await m.query('UPDATE drv_items SET v = v + 1 WHERE id = -1');
      await m.query('COMMIT');
      eq(await settings(m), mainSettings, `settings after transaction ${i}`);
    }
    await other.end();
    await m.query("SET statement_timeout = '200ms'");
    await expectError(m.query('SELECT pg_sleep(2)'), '57014', 'pg_sleep(2) with a 200ms timeout');
    await m.query("SET statement_timeout = '17s'");
    eq(await settings(m), mainSettings, 'settings after the timeout');
  });

  await check('SET and SET LOCAL inside transactions that roll back and commit', async () => {
    await m.query('BEGIN');
    await m.query("SET application_name = 'drv_rolled_back'");
    await m.query("SET LOCAL statement_timeout = '3s'");
    eq(await one(m, 'SHOW statement_timeout'), '3s', 'SET LOCAL inside a transaction');
    await m.query('ROLLBACK');
    eq(await settings(m), mainSettings, 'settings after ROLLBACK');
    await m.query('BEGIN');
    await m.query("SET LOCAL statement_timeout = '4s'");
    await m.query("SET application_name = 'drv_committed'");
    await m.query('COMMIT');
    eq(await settings(m), ['drv_committed', 'drv_s_main, public', '17s', 'main'], 'settings after COMMIT');
  });

  await check('RESET and RESET ALL restore the startup parameters', async () => {
    await m.query("SET application_name = 'drv_before_reset'");
    await m.query('RESET application_name');
    eq(await one(m, 'SHOW application_name'), 'drv_main', 'RESET application_name');
    await m.query("SET application_name = 'x'; SET search_path TO x, public; SET statement_timeout = '17s'");
    await m.query('RESET ALL');
    for (let i = 0; i < 3; i++) eq((await settings(m)).slice(0, 3), ['drv_main', DEFAULT_SEARCH_PATH, '0'], `settings after RESET ALL, query ${i}`);
  });
  await m.query("RESET ALL; SET application_name = 'drv_main'");

  await check(`${CLIENTS} connections x ${ITERATIONS} iterations read back their own writes and settings`, async () => {
    await allClients(CLIENTS, async (i) => {
      const c = await connect(`drv_w${i}`);
      try {
        let want = [`drv_w${i}`, DEFAULT_SEARCH_PATH, '0', ''];
        if (i > 0) {
          await c.query(`SET application_name = 'drv_set_w${i}'`);
          await c.query(`SET search_path TO drv_s${i}, public`);
          await c.query(`SET statement_timeout = '${100 + i}s'`);
          await c.query(`SET myapp.client_id = '${i}'`);
          want = [`drv_set_w${i}`, `drv_s${i}, public`, `${100 + i}s`, `${i}`];
        }
        let v = 0, committed = 0;
        for (let it = 0; it < ITERATIONS; it++) {
          await c.query('BEGIN');
          eq(await one(c, 'UPDATE drv_items SET v = v + 1, who = $1 WHERE id = $2 RETURNING v', [`w${i}`, i]), v + 1, `iteration ${it}: UPDATE ... RETURNING`);
          await c.query('INSERT INTO drv_log VALUES ($1, $2)', [i, it]);
          eq(await settings(c), want, `iteration ${it}: settings in the transaction`);
          if (it % 3 === 2) await c.query('ROLLBACK');
          else { await c.query('COMMIT'); v++; committed++; }
          eq(await q(c, 'SELECT v, who FROM drv_items WHERE id = $1', [i]), [{ v, who: v > 0 ? `w${i}` : 'init' }], `iteration ${it}: own row`);
          eq(await settings(c), want, `iteration ${it}: settings`);
        }
        eq(await one(c, 'SELECT count(*)::int FROM drv_log WHERE client = $1', [i]), committed, 'own log rows');
      } finally {
        await c.end();
      }
    });
    eq(await one(m, 'SELECT count(*)::int FROM drv_log'), CLIENTS * (ITERATIONS - Math.floor(ITERATIONS / 3)), 'log rows of all clients');
  });

  await check('prepared statements, reused across transactions', async () => {
    const other = await connect('drv_other');
    const v0 = await one(m, 'SELECT v FROM drv_items WHERE id = -1');
    const stmt = (x) => ({ name: 'drv_get', text: 'SELECT v, $1::int * 2 AS d FROM drv_items WHERE id = -1', values: [x] });
    for (let i = 0; i < 20; i++) {
      eq(await q(m, stmt(i)), [{ v: v0, d: i * 2 }], `prepared statement, execution ${i}`);
      eq(await one(other, 'SELECT $1::int AS x', [i]), i, 'another connection in between');
      if (i % 5 === 4) {
        await m.query('BEGIN');
        eq((await q(m, stmt(7)))[0].d, 14, 'prepared statement inside a transaction');
        await m.query('COMMIT');
      }
    }
    await other.end();
  });

  await check('prepared statements with the same name on 4 connections stay apart', async () => {
    await allClients(4, async (i) => {
      const c = await connect(`drv_p${i}`);
      try {
        for (let it = 0; it < ITERATIONS; it++) {
          eq(await one(c, { name: 'drv_same', text: `SELECT $1::int + ${1000 * i} AS x`, values: [it] }), it + 1000 * i, `iteration ${it}: own prepared statement`);
        }
      } finally {
        await c.end();
      }
    });
  });

  await check('a new connection sees only defaults', async () => {
    await m.end();
    const c = await connect('drv_last');
    eq(await settings(c), ['drv_last', DEFAULT_SEARCH_PATH, '0', ''], 'settings of a new connection');
    await c.end();
  });
  console.log('done');
  process.exit(failed ? 1 : 0);
}

main().catch((e) => { console.log(`not ok - unexpected: ${e.stack}`); process.exit(1); });
