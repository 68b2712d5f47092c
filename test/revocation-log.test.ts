import { randomUUID } from 'node:crypto'
import { join } from 'node:path'
import Database from 'better-sqlite3'
import pg from 'pg'
import t from 'tap'
import { migrate } from '../lib/index.js'
import { createStore, type Store } from '../lib/store/index.js'
import { createTestDatabase, dialects, postgresUrl, type Dialect, type TestDatabase } from './helper.js'

// The log of revocations that each instance's revocation list reads from where its last read
// stopped (store.revocationsAfter): every way a session is revoked is logged once, and no
// revocation is skipped by a read, not one that commits after a read that could not see it, nor
// one that comes after the purge deleted the newest rows.

const MINUTE = 60_000
const RETAIN = new Date(Date.now() - 10 * MINUTE)
// Tests that need a PostgreSQL server, not PGlite: two connections at once, roles, publications
// (the helper refuses CI without one).
const SERVER_ONLY = { skip: postgresUrl === undefined ? 'needs SECURELOGIN_TEST_POSTGRES_URL (CI sets it)' : false }

/** The dialect's placeholder for the nth parameter, and the current time as its driver binds it. */
const placeholder = (dialect: Dialect) => (n: number) => dialect === 'sqlite' ? '?' : `$${n}`
const timeNow = (dialect: Dialect) => dialect === 'sqlite' ? Date.now() : new Date()

/** An account with `count` live sessions, written straight into the tables. */
async function sessionsOf (database: TestDatabase, dialect: Dialect, count: number): Promise<{ userId: string, ids: string[] }> {
  const p = placeholder(dialect)
  const now = timeNow(dialect)
  const later = dialect === 'sqlite' ? Date.now() + 86_400_000 : new Date(Date.now() + 86_400_000)
  const userId = randomUUID()
  await database.query(`INSERT INTO securelogin_users (id, phone, phone_verified_at, created_at) VALUES (${p(1)}, ${p(2)}, ${p(3)}, ${p(4)})`, [userId, `+1415555${String(Math.floor(Math.random() * 10_000)).padStart(4, '0')}`, now, now])
  const ids = Array.from({ length: count }, () => randomUUID())
  for (const id of ids) {
    await database.query(`INSERT INTO securelogin_sessions (id, user_id, created_at, refreshed_at, expires_at) VALUES (${p(1)}, ${p(2)}, ${p(3)}, ${p(4)}, ${p(5)})`, [id, userId, now, now, later])
  }
  return { userId, ids }
}

/** The SQL that revokes a session the way an app's own statement would, outside the store. */
function revokeSql (dialect: Dialect, id: string): string {
  return `UPDATE securelogin_sessions SET revoked_at = ${dialect === 'sqlite' ? Date.now() : 'now()'} WHERE id = '${id}'`
}

const idsOf = async (store: Store, cursor: number | undefined) => (await store.revocationsAfter(cursor, RETAIN)).revocations.map((row) => row.id).sort()

for (const dialect of dialects) {
  t.test(`${dialect}: every way of revoking a session logs it once`, async (t) => {
    const database = await createTestDatabase(t, dialect)
    await migrate(database.db)
    const store = createStore(database.db, dialect)
    const { userId, ids } = await sessionsOf(database, dialect, 5)
    const [one, two, three, kept, own] = ids as [string, string, string, string, string]
    const start = await store.revocationsAfter(undefined, RETAIN)
    t.same(start.revocations, [], 'nothing revoked, nothing logged')

    t.equal(await store.revokeSession(one, userId, 'logout', new Date()), true)
    t.equal(await store.revokeSession(one, userId, 'logout', new Date()), false, 'a second logout of the same session')
    t.same((await store.revokeOtherSessions(userId, kept, new Date())).sort(), [two, three, own].sort())
    await database.query(dialect === 'sqlite'
      ? `UPDATE securelogin_sessions SET revoked_at = ${Date.now() + 1000} WHERE id = '${one}'`
      : `UPDATE securelogin_sessions SET revoked_at = now() + interval '1 second' WHERE id = '${one}'`)
    const read = await store.revocationsAfter(start.cursor, RETAIN)
    t.same(read.revocations.map((row) => row.id).sort(), [one, two, three, own].sort(), 'each revoked session once; moving the time of a revoked one logs nothing more')
    t.ok(read.revocations.every((row) => row.revokedAt instanceof Date && Math.abs(row.revokedAt.getTime() - Date.now()) < MINUTE), 'with the time of its revocation')
    t.same(await idsOf(store, read.cursor), [], 'a read from the cursor the last one returned finds nothing new')

    await database.query(revokeSql(dialect, kept))
    t.same(await idsOf(store, read.cursor), [kept], 'a revocation by the app\'s own SQL is logged as well')
    const p = placeholder(dialect)
    const now = timeNow(dialect)
    const writtenRevoked = randomUUID()
    await database.query(`${dialect === 'sqlite' ? 'REPLACE' : 'INSERT'} INTO securelogin_sessions (id, user_id, created_at, refreshed_at, expires_at, revoked_at) VALUES (${p(1)}, ${p(2)}, ${p(3)}, ${p(4)}, ${p(5)}, ${p(6)})`, [writtenRevoked, userId, now, now, now, now])
    t.same(await idsOf(store, read.cursor), [kept, writtenRevoked].sort(), 'so is a session written already revoked')
    t.same((await store.revocationsAfter(undefined, new Date(Date.now() + MINUTE))).revocations, [], 'revocations before `since` are not read')
  })

  t.test(`${dialect}: a revocation after the purge deleted the newest log rows is not skipped`, async (t) => {
    const database = await createTestDatabase(t, dialect)
    await migrate(database.db)
    const store = createStore(database.db, dialect)
    const [first, second] = (await sessionsOf(database, dialect, 2)).ids as [string, string]
    await database.query(revokeSql(dialect, first))
    const read = await store.revocationsAfter(undefined, RETAIN)
    t.same(read.revocations.map((row) => row.id), [first])
    await database.query('DELETE FROM securelogin_revocations')
    await database.query(revokeSql(dialect, second))
    t.same(await idsOf(store, read.cursor), [second], 'the next revocation comes after the cursor: a position is never given twice')
  })
}

t.test('postgres: a revocation that commits after a read that could not see it is in the next read', SERVER_ONLY, async (t) => {
  const database = await createTestDatabase(t, 'postgres')
  if (database.url === undefined) throw new Error('expected a PostgreSQL server')
  await migrate(database.db)
  const store = createStore(database.db, 'postgres')
  const [late, early] = (await sessionsOf(database, 'postgres', 2)).ids as [string, string]
  const start = await store.revocationsAfter(undefined, RETAIN)

  const slow = new pg.Client({ connectionString: database.url })
  await slow.connect()
  t.teardown(() => slow.end())
  await slow.query('BEGIN')
  await slow.query(revokeSql('postgres', late))
  // A later transaction (a higher id) revokes and commits first.
  await database.query(revokeSql('postgres', early))
  const read = await store.revocationsAfter(start.cursor, RETAIN)
  t.same(read.revocations.map((row) => row.id), [early], 'the read sees the revocation committed, not the one still open')
  await slow.query('COMMIT')
  const next = await idsOf(store, read.cursor)
  t.ok(next.includes(late), 'the next read, from the cursor the last returned, finds the one that committed late')
  t.ok(next.every((id) => id === late || id === early), 'and may read again what the last read saw (it resumes from the oldest transaction open then), nothing else')
})

t.test('sqlite: a revocation written but not committed during a read is in the next read', async (t) => {
  const file = join(t.testdir(), 'log.db')
  const database = await createTestDatabase(t, 'sqlite', file)
  await migrate(database.db)
  const store = createStore(database.db, 'sqlite')
  const [late] = (await sessionsOf(database, 'sqlite', 1)).ids as [string]
  const start = await store.revocationsAfter(undefined, RETAIN)

  const other = new Database(file)
  t.teardown(() => other.close())
  other.exec('BEGIN IMMEDIATE')
  other.exec(revokeSql('sqlite', late))
  const read = await store.revocationsAfter(start.cursor, RETAIN)
  t.same(read.revocations, [], 'the read cannot see the revocation not yet committed')
  other.exec('COMMIT')
  t.same(await idsOf(store, read.cursor), [late], 'the next read finds it: its position is not before the cursor')
})

t.test('postgres: the purge deletes from the log when every table is published for logical replication', SERVER_ONLY, async (t) => {
  const database = await createTestDatabase(t, 'postgres')
  await migrate(database.db)
  // A change-data-capture setup: DELETE on a published table without a replica identity fails.
  await database.query('CREATE PUBLICATION securelogin_test_all FOR ALL TABLES')
  t.teardown(() => database.query('DROP PUBLICATION IF EXISTS securelogin_test_all'))
  await database.query("INSERT INTO securelogin_revocations (session_id, revoked_at) VALUES (gen_random_uuid(), now() - interval '2 days')")
  const purged = await createStore(database.db, 'postgres').purgeExpired({ now: new Date(), challengesExpiredBefore: new Date(), longestWindowMs: MINUTE, endedBefore: new Date(Date.now() - MINUTE), unverifiedBefore: undefined })
  t.equal(purged.revocations, 1, 'the old revocation went: the log has a primary key')
})

t.test('postgres: a role with no rights on the log revokes, and the row goes to the log beside the sessions whatever its search_path', SERVER_ONLY, async (t) => {
  const database = await createTestDatabase(t, 'postgres')
  await migrate(database.db)
  const store = createStore(database.db, 'postgres')
  const [revoked] = (await sessionsOf(database, 'postgres', 1)).ids as [string]
  const start = await store.revocationsAfter(undefined, RETAIN)
  // An instance of the previous version: its role was granted what the tables before the log needed.
  const role = `securelogin_test_${randomUUID().slice(0, 8)}`
  await database.query(`CREATE ROLE ${role}`)
  t.teardown(async () => { await database.query(`DROP OWNED BY ${role}`); await database.query(`DROP ROLE ${role}`) })
  await database.query(`GRANT SELECT, UPDATE ON securelogin_sessions TO ${role}`)
  // And a table of the same name earlier on its search_path.
  await database.query('CREATE SCHEMA elsewhere')
  await database.query('CREATE TABLE elsewhere.securelogin_revocations (txid bigint, session_id uuid, revoked_at timestamptz)')
  await database.query(`GRANT USAGE ON SCHEMA elsewhere TO ${role}`)
  await database.query(`GRANT ALL ON elsewhere.securelogin_revocations TO ${role}`)
  const client = new pg.Client({ connectionString: database.url })
  await client.connect()
  t.teardown(() => client.end())
  await client.query(`SET ROLE ${role}`)
  await client.query('SET search_path TO elsewhere, public')
  await client.query(revokeSql('postgres', revoked))
  t.same(await idsOf(store, start.cursor), [revoked], 'the revocation is in the plugin\'s log')
  t.same(await database.query('SELECT * FROM elsewhere.securelogin_revocations'), [], 'not in the other table')
})

t.test('postgres: purges running at once over one transaction\'s many revocations do not deadlock, and each row goes once', SERVER_ONLY, async (t) => {
  const database = await createTestDatabase(t, 'postgres')
  await migrate(database.db)
  const stores = [0, 1, 2].map(() => createStore(database.db, 'postgres'))
  const purge = (store: Store) => store.purgeExpired({ now: new Date(), challengesExpiredBefore: new Date(), longestWindowMs: MINUTE, endedBefore: new Date(Date.now() - MINUTE), unverifiedBefore: undefined })
  for (let round = 0; round < 5; round++) {
    // One statement, one transaction id: as logout of every session of an account, or migration 0002's copy.
    await database.query("INSERT INTO securelogin_revocations (session_id, revoked_at) SELECT gen_random_uuid(), now() - interval '2 days' FROM generate_series(1, 3000)")
    const purged = await Promise.all(stores.map(purge))
    t.equal(purged.reduce((sum, result) => sum + result.revocations, 0), 3000, `round ${round}: every old revocation went once, no purge failed`)
  }
})
