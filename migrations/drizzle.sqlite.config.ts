import { defineConfig } from 'drizzle-kit'

export default defineConfig({
  dialect: 'sqlite',
  schema: './lib/db/sqlite.ts',
  out: './migrations/sqlite',
})
