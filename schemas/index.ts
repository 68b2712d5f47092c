export * from './common.js'
export * from './auth.js'
export * from './openapi.js'
export { SecureLoginOptionsSchema } from './options.js'
