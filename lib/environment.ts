/** The environments where shortcuts that weaken security are expected. An unset NODE_ENV is not one: servers often run so. */
const DEVELOPMENT_ENVS = new Set(['development', 'test'])

/** True when NODE_ENV is `development` or `test`. */
export function isDevelopment (): boolean {
  return DEVELOPMENT_ENVS.has(process.env.NODE_ENV ?? '')
}

/** NODE_ENV as a message shows it. */
export function describeNodeEnv (): string {
  const env = process.env.NODE_ENV
  return env === undefined || env === '' ? 'NODE_ENV is not set' : `NODE_ENV=${JSON.stringify(env)}`
}
