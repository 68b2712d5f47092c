import { fileURLToPath } from 'node:url'
import { buildExampleApp } from './app.js'
import { jwtSecretFromEnv } from './config.js'
import { openDatabase } from './database.js'
import { smsProviderFromEnv } from './sms.js'

const here = fileURLToPath(new URL('.', import.meta.url))
const env = process.env

const sms = smsProviderFromEnv(env)
const jwtSecret = jwtSecretFromEnv(env, `${here}.data/jwt-secret`, (message) => console.warn(message))
const { db, close } = await openDatabase(env.DATABASE_URL ?? `${here}.data/example.db`)
const app = await buildExampleApp({ db, sms, jwtSecret, logger: true })
app.addHook('onClose', close)

for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => { app.close().then(() => process.exit(0), () => process.exit(1)) })
}

await app.listen({ host: env.HOST ?? '127.0.0.1', port: Number(env.PORT ?? 3000) })
