import { FormatRegistry } from '@sinclair/typebox'

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i

/** TypeBox's compiler knows no formats by itself; the schemas here use only `uuid`. */
export function registerFormats (): void {
  if (!FormatRegistry.Has('uuid')) FormatRegistry.Set('uuid', (value) => UUID.test(value))
}
