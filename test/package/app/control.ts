// The same drizzle-orm and driver with nothing of ours: the errors tsc reports here come from
// drizzle-orm's own declarations (drizzle-team/drizzle-orm#5187), and are the only ones tolerated
// in app.ts.
import Database from 'better-sqlite3'
import { drizzle } from 'drizzle-orm/better-sqlite3'

export const db = drizzle(new Database(':memory:'))
