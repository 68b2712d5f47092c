import t from 'tap'
import { migrate } from '../lib/index.js'
import { createTestDatabase, dialects } from './helper.js'

for (const dialect of dialects) {
  t.test(`${dialect}: instances migrating one empty database at once all succeed`, async (t) => {
    const database = await createTestDatabase(t, dialect)
    const results = await Promise.allSettled(Array.from({ length: 6 }, () => migrate(database.db)))
    t.same(results.map((result) => result.status), Array(6).fill('fulfilled'), String(results.find((r) => r.status === 'rejected') && (results.find((r) => r.status === 'rejected') as PromiseRejectedResult).reason))
    const applied = await database.query(dialect === 'sqlite' ? 'SELECT hash FROM __securelogin_migrations' : 'SELECT hash FROM drizzle.__securelogin_migrations')
    t.equal(applied.length, 1, 'each migration is recorded once')
  })
}
