// A CommonJS app: the package is ESM-only and CommonJS reaches it through require(esm), unflagged
// since Node 20.19 and 22.12 (package.json engines). Fastify unwraps the namespace's default export.
const { randomBytes } = require('node:crypto')
const Database = require('better-sqlite3')
const { drizzle } = require('drizzle-orm/better-sqlite3')
const Fastify = require('fastify')
const secureLogin = require('fastify-securelogin')

const app = Fastify()
// consoleSms() runs only with NODE_ENV development or test: allowInProduction keeps this check independent of it.
app.register(secureLogin, { db: drizzle(new Database(':memory:')), sms: secureLogin.consoleSms({ allowInProduction: true, write: () => {} }), jwt: { secret: randomBytes(48).toString('base64') } })
app.ready().then(() => {
  if (typeof app.authenticate !== 'function') throw new Error('require(): the plugin did not decorate the app')
  return app.close()
})
