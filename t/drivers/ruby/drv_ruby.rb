# drv_ruby.rb: ruby-pg through pgdog (t/drivers/run.sh ruby).
# exec runs the simple protocol, exec_params an unnamed extended statement,
# prepare / exec_prepared a named prepared statement.
require 'pg'
require 'timeout'

ENVV = ENV
CLIENTS = (ENVV['DRV_CLIENTS'] || '10').to_i
ITERATIONS = (ENVV['DRV_ITERATIONS'] || '30').to_i
DEFAULT_SEARCH_PATH = '"$user", public'
SETTINGS_SQL = "SELECT current_setting('application_name'), current_setting('search_path'), " \
               "current_setting('statement_timeout'), current_setting('myapp.client_id', true)"
$failed = 0

class CheckFailed < StandardError; end

def eq(got, want, what)
  raise CheckFailed, "#{what}: got #{got.inspect}, expected #{want.inspect}" unless got == want
end

def check(name)
  t0 = Time.now
  Timeout.timeout(60) { yield }
  puts format('ok - %s (%.1f s)', name, Time.now - t0)
  true
rescue CheckFailed => e
  $failed += 1
  puts "not ok - #{name}: #{e.message}"
  false
rescue StandardError, Timeout::Error => e
  $failed += 1
  puts "not ok - #{name}: #{e.class}: #{e.message.strip}"
  puts e.backtrace.first(5)
  false
ensure
  $stdout.flush
end

def connect(app, password = nil)
  PG.connect(host: ENVV['PGDOG_TEST_HOST'] || '127.0.0.1', port: (ENVV['PGDOG_TEST_PORT'] || '6432').to_i,
             user: ENVV['PGDOG_TEST_USER'] || 'app', password: password || ENVV['PGDOG_TEST_PASSWORD'] || 'app_pw',
             dbname: ENVV['PGDOG_TEST_DB'] || 'app', application_name: app, connect_timeout: 10)
end

def rows(c, sql, params = nil)
  (params ? c.exec_params(sql, params) : c.exec(sql)).values
end

def one(c, sql, params = nil)
  rows(c, sql, params)[0][0]
end

def settings(c)
  r = rows(c, SETTINGS_SQL)[0]
  [r[0], r[1], r[2], r[3] || '']
end

def expect_error(code, what)
  yield
  raise CheckFailed, "#{what} did not fail"
rescue PG::Error => e
  eq(e.result && e.result.error_field(PG::PG_DIAG_SQLSTATE), code, "SQLSTATE of #{what}")
end

def all_clients(n)
  errors = Array.new(n)
  threads = (0...n).map do |i|
    Thread.new do
      yield i
    rescue StandardError => e
      errors[i] = "client #{i}: #{e.class}: #{e.message.strip}"
    end
  end
  threads.each { |t| t.join(90) }
  errs = errors.compact
  raise CheckFailed, errs.first(3).join('; ') + (errs.size > 3 ? " (and #{errs.size - 3} more)" : '') unless errs.empty?
end

m = nil
ok = check('connect with SCRAM (and a wrong password is refused)') do
  begin
    connect('drv_bad', 'wrong_pw').close
    raise CheckFailed, 'a wrong password was accepted'
  rescue PG::Error
    nil
  end
  m = connect('drv_main')
  eq(rows(m, "SELECT current_user, current_setting('application_name')"), [%w[app drv_main]], 'current_user, application_name')
end
unless ok
  puts 'done'
  exit 1
end

check('simple queries') do
  eq(one(m, 'SELECT 1 + 1'), '2', 'SELECT 1 + 1')
  eq(rows(m, 'SELECT g FROM generate_series(1, 1000) g').sum { |r| r[0].to_i }, 500_500, 'sum of generate_series')
  eq(rows(m, "SELECT 1; SELECT 'two'"), [['two']], 'two statements in one query')
end

check('parameterized queries') do
  eq(rows(m, 'SELECT $1::int + $2::int, $3::text, $4::text IS NULL', [2, 3, "it's; --", nil]), [['5', "it's; --", 't']], 'parameters')
  20.times { |i| eq(one(m, 'SELECT $1::int * 3', [i]), (i * 3).to_s, "parameter #{i}") }
end

check('create tables') do
  m.exec('DROP TABLE IF EXISTS drv_items; DROP TABLE IF EXISTS drv_log;' \
         'CREATE TABLE drv_items (id int PRIMARY KEY, v int NOT NULL, who text);' \
         'CREATE TABLE drv_log (client int NOT NULL, iter int NOT NULL)')
  (-1...CLIENTS).each { |i| m.exec_params("INSERT INTO drv_items VALUES ($1, 0, 'init')", [i]) }
  eq(one(m, 'SELECT count(*) FROM drv_items'), (CLIENTS + 1).to_s, 'rows')
end

check('transaction commit') do
  m.transaction do |t|
    t.exec("UPDATE drv_items SET v = 10, who = 'main' WHERE id = -1")
    eq(one(t, 'SELECT v FROM drv_items WHERE id = -1'), '10', 'inside')
  end
  other = connect('drv_other')
  eq(rows(other, 'SELECT v, who FROM drv_items WHERE id = -1'), [%w[10 main]], 'committed row seen by another connection')
  other.close
end

check('transaction rollback') do
  m.exec('BEGIN')
  m.exec('UPDATE drv_items SET v = 20 WHERE id = -1')
  m.exec("INSERT INTO drv_items VALUES (1000, 1, 'rolled back')")
  eq(one(m, 'SELECT v FROM drv_items WHERE id = -1'), '20', 'inside')
  m.exec('ROLLBACK')
  eq(one(m, 'SELECT v FROM drv_items WHERE id = -1'), '10', 'after rollback')
  eq(one(m, 'SELECT count(*) FROM drv_items WHERE id = 1000'), '0', 'rolled-back insert')
end

check('error inside a transaction, rollback, reuse') do
  m.exec('BEGIN')
  m.exec("INSERT INTO drv_items VALUES (1001, 1, 'error')")
  expect_error('22012', '1 / 0') { m.exec_params('SELECT 1 / $1::int', [0]) }
  expect_error('25P02', 'a query in a failed transaction') { m.exec('SELECT 1') }
  m.exec('ROLLBACK')
  eq(one(m, 'SELECT 1'), '1', 'the connection after ROLLBACK')
  eq(one(m, 'SELECT count(*) FROM drv_items WHERE id = 1001'), '0', 'insert before the error')
  m.transaction { |t| t.exec('UPDATE drv_items SET v = v + 1 WHERE id = -1') }
  eq(one(m, 'SELECT v FROM drv_items WHERE id = -1'), '11', 'commit after the error')
end

main_settings = ['drv_main_set', 'drv_s_main, public', '17s', 'main']
check('SET persists across transactions and stays on its connection') do
  m.exec("SET application_name = 'drv_main_set'")
  m.exec('SET search_path TO drv_s_main, public')
  m.exec("SET statement_timeout = '17s'")
  m.exec("SET myapp.client_id = 'main'")
  other = connect('drv_other')
  6.times do |i|
    eq(settings(other), ['drv_other', DEFAULT_SEARCH_PATH, '0', ''], "settings of another connection, round #{i}")
    m.transaction do
      eq(settings(m), main_settings, "settings in transaction #{i}")
      m.exec('UPDATE drv_items SET v = v + 1 WHERE id = -1')
    end
    eq(settings(m), main_settings, "settings after transaction #{i}")
  end
  other.close
  m.exec("SET statement_timeout = '200ms'")
  expect_error('57014', 'pg_sleep(2) with a 200ms timeout') { m.exec('SELECT pg_sleep(2)') }
  m.exec("SET statement_timeout = '17s'")
  eq(settings(m), main_settings, 'settings after the timeout')
end

check('SET and SET LOCAL inside transactions that roll back and commit') do
  m.exec('BEGIN')
  m.exec("SET application_name = 'drv_rolled_back'")
  m.exec("SET LOCAL statement_timeout = '3s'")
  eq(one(m, 'SHOW statement_timeout'), '3s', 'SET LOCAL inside a transaction')
  m.exec('ROLLBACK')
  eq(settings(m), main_settings, 'settings after ROLLBACK')
  m.exec('BEGIN')
  m.exec("SET LOCAL statement_timeout = '4s'")
  m.exec("SET application_name = 'drv_committed'")
  m.exec('COMMIT')
  eq(settings(m), ['drv_committed', 'drv_s_main, public', '17s', 'main'], 'settings after COMMIT')
end

check('RESET and RESET ALL restore the startup parameters') do
  m.exec("SET application_name = 'drv_before_reset'")
  m.exec('RESET application_name')
  eq(one(m, 'SHOW application_name'), 'drv_main', 'RESET application_name')
  m.exec("SET application_name = 'x'; SET search_path TO x, public; SET statement_timeout = '17s'")
  m.exec('RESET ALL')
  3.times { |i| eq(settings(m)[0, 3], ['drv_main', DEFAULT_SEARCH_PATH, '0'], "settings after RESET ALL, query #{i}") }
end
m.exec("RESET ALL; SET application_name = 'drv_main'")

check("#{CLIENTS} connections x #{ITERATIONS} iterations read back their own writes and settings") do
  all_clients(CLIENTS) do |i|
    c = connect("drv_w#{i}")
    begin
      want = ["drv_w#{i}", DEFAULT_SEARCH_PATH, '0', '']
      if i.positive?
        c.exec("SET application_name = 'drv_set_w#{i}'")
        c.exec("SET search_path TO drv_s#{i}, public")
        c.exec("SET statement_timeout = '#{100 + i}s'")
        c.exec("SET myapp.client_id = '#{i}'")
        want = ["drv_set_w#{i}", "drv_s#{i}, public", "#{100 + i}s", i.to_s]
      end
      v = 0
      committed = 0
      ITERATIONS.times do |it|
        c.exec('BEGIN')
        eq(one(c, 'UPDATE drv_items SET v = v + 1, who = $1 WHERE id = $2 RETURNING v', ["w#{i}", i]), (v + 1).to_s, "iteration #{it}: UPDATE ... RETURNING")
        c.exec_params('INSERT INTO drv_log VALUES ($1, $2)', [i, it])
        eq(settings(c), want, "iteration #{it}: settings in the transaction")
        if it % 3 == 2
          c.exec('ROLLBACK')
        else
          c.exec('COMMIT')
          v += 1
          committed += 1
        end
        eq(rows(c, 'SELECT v, who FROM drv_items WHERE id = $1', [i]), [[v.to_s, v.positive? ? "w#{i}" : 'init']], "iteration #{it}: own row")
        eq(settings(c), want, "iteration #{it}: settings")
      end
      eq(one(c, 'SELECT count(*) FROM drv_log WHERE client = $1', [i]), committed.to_s, 'own log rows')
    ensure
      c.close
    end
  end
  eq(one(m, 'SELECT count(*) FROM drv_log'), (CLIENTS * (ITERATIONS - ITERATIONS / 3)).to_s, 'log rows of all clients')
end

check('prepared statements, reused across transactions') do
  other = connect('drv_other')
  v0 = one(m, 'SELECT v FROM drv_items WHERE id = -1')
  m.prepare('drv_get', 'SELECT v, $1::int * 2 FROM drv_items WHERE id = -1')
  20.times do |i|
    eq(m.exec_prepared('drv_get', [i]).values, [[v0, (i * 2).to_s]], "prepared statement, execution #{i}")
    eq(one(other, 'SELECT $1::int', [i]), i.to_s, 'another connection in between')
    next unless i % 5 == 4

    m.transaction { eq(m.exec_prepared('drv_get', [7]).values[0][1], '14', 'prepared statement inside a transaction') }
  end
  other.close
end

check('prepared statements with the same name on 4 connections stay apart') do
  all_clients(4) do |i|
    c = connect("drv_p#{i}")
    begin
      c.prepare('drv_same', "SELECT $1::int + #{1000 * i}")
      ITERATIONS.times do |it|
        eq(c.exec_prepared('drv_same', [it]).values, [[(it + 1000 * i).to_s]], "iteration #{it}: own prepared statement")
      end
    ensure
      c.close
    end
  end
end

check('DEALLOCATE of a prepared statement (as Rails evicts from its statement cache)') do
  other = connect('drv_other')
  6.times do |i|
    m.prepare("a#{i}", "SELECT $1::int + #{i}")
    eq(m.exec_prepared("a#{i}", [10]).values, [[(10 + i).to_s]], "statement a#{i}")
    eq(one(other, 'SELECT 1'), '1', 'another connection in between')
    next if i < 2

    m.exec("DEALLOCATE a#{i - 2}")
    expect_error('26000', "a#{i - 2} after its DEALLOCATE") { m.exec_prepared("a#{i - 2}", [1]) }
  end
  m.exec('DEALLOCATE ALL')
  expect_error('26000', 'a5 after DEALLOCATE ALL') { m.exec_prepared('a5', [1]) }
  other.close
end

check('a new connection sees only defaults') do
  m.close
  c = connect('drv_last')
  eq(settings(c), ['drv_last', DEFAULT_SEARCH_PATH, '0', ''], 'settings of a new connection')
  c.close
end
puts 'done'
exit($failed.zero? ? 0 : 1)
