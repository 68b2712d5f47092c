import { createRequire } from 'node:module'
import t from 'tap'
import { buildApp, post, signIn, testPhone } from './helper.js'

// Dependencies only some apps need are loaded when first needed, not with the plugin: every server
// would otherwise carry their memory (the Argon2 addon about 7 MB of RSS). This file runs in a
// process of its own, so nothing else loaded them first.

const loaded = (name: string) => Object.keys(createRequire(import.meta.url).cache).some((file) => file.includes(`/node_modules/${name}/`))

t.test('a phone sign-in loads neither Argon2 nor the Twilio SDK; the first password account loads Argon2', async (t) => {
  const test = await buildApp(t, 'sqlite', { password: { enabled: true } })
  await signIn(test, testPhone())
  t.equal(loaded('@node-rs/argon2'), false, 'Argon2 is not loaded by registering the plugin and signing in by phone')
  t.equal(loaded('twilio'), false, 'nor is the Twilio SDK with another SMS provider')
  const registered = await post(test.app, '/register', { auth_type: 'PASSWORD', email: `lazy.${process.pid}@example.com`, password: 'correct horse battery staple' })
  t.match(registered.json(), { message: 'registered successfully' })
  t.equal(loaded('@node-rs/argon2'), true, 'a password to hash loads it (the check above can see it)')
})
