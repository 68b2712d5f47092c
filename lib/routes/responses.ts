import { ErrorResponse } from '../../schemas/common.js'

/** The error statuses a route can answer, each with the one documented error shape. */
export function errorResponses<S extends number> (...statuses: S[]): Record<S, typeof ErrorResponse> {
  return Object.fromEntries(statuses.map((status) => [status, ErrorResponse])) as Record<S, typeof ErrorResponse>
}
