import { defineConfig } from 'drizzle-kit'

export default defineConfig({
  dialect: 'postgresql',
  schema: './lib/db/postgres.ts',
  out: './migrations/postgres',
})
