// The same drizzle-orm and drivers with nothing of ours: the errors tsc reports here come from
// drizzle-orm's own declarations (drizzle-team/drizzle-orm#5187), and are the only ones tolerated
// in app.ts and postgres.ts.
import Database from 'better-sqlite3'
import { drizzle } from 'drizzle-orm/better-sqlite3'
import { drizzle as drizzlePg } from 'drizzle-orm/node-postgres'
import pg from 'pg'

export const db = drizzle(new Database(':memory:'))
export const pgDb = drizzlePg(new pg.Pool())
