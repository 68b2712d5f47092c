import createError from '@fastify/error'

// Every error a client can receive from this plugin. Codes are stable and documented in
// docs/errors.md; messages are safe to show an end user and never carry vendor or SQL text.

export const BadRequestError = createError('SECURELOGIN_BAD_REQUEST', '%s', 400)
export const PhoneInvalidError = createError('SECURELOGIN_PHONE_INVALID', 'The phone number is not a valid number', 400)
export const PhoneCountryNotAllowedError = createError('SECURELOGIN_PHONE_COUNTRY_NOT_ALLOWED', 'Numbers of this country are not accepted here', 400)
export const PhoneTypeNotAllowedError = createError('SECURELOGIN_PHONE_TYPE_NOT_ALLOWED', 'This kind of number (e.g. premium-rate, toll-free or landline) is not accepted here', 400)
export const ClientAddressInvalidError = createError('SECURELOGIN_CLIENT_ADDRESS_INVALID', 'The client address is not an IP address', 400)
export const UserMismatchError = createError('SECURELOGIN_USER_MISMATCH', 'The userid does not belong to this phone number', 400)
export const PasswordDisabledError = createError('SECURELOGIN_PASSWORD_DISABLED', 'Password sign-in is not enabled on this server', 400)
export const EmailInvalidError = createError('SECURELOGIN_EMAIL_INVALID', 'The email address is not valid: %s', 400)
export const PasswordPolicyError = createError('SECURELOGIN_PASSWORD_POLICY', 'The new password is not acceptable: %s', 400)
export const PasswordBreachedError = createError('SECURELOGIN_PASSWORD_BREACHED', 'This password appears in known data breaches; choose another', 400)

export const CredentialsInvalidError = createError('SECURELOGIN_CREDENTIALS_INVALID', 'The email or password is incorrect', 401)
export const LoginLockedError = createError('SECURELOGIN_LOGIN_LOCKED', 'Too many failed sign-ins for this email; retry in %d seconds', 429)
export const OtpInvalidError = createError('SECURELOGIN_OTP_INVALID', 'The code is incorrect', 401)
export const OtpExpiredError = createError('SECURELOGIN_OTP_EXPIRED', 'There is no valid code for this phone number; request a new one', 401)
export const OtpAttemptsExceededError = createError('SECURELOGIN_OTP_ATTEMPTS_EXCEEDED', 'Too many incorrect codes; request a new one', 429)
export const OtpResendTooSoonError = createError('SECURELOGIN_OTP_RESEND_TOO_SOON', 'A code was sent recently; retry in %d seconds', 429)
export const SendRefusedError = createError('SECURELOGIN_SEND_REFUSED', 'The code cannot be sent to this number now', 403)
export const PhoneLockedError = createError('SECURELOGIN_PHONE_LOCKED', 'Too many wrong codes for this number; retry in %d seconds', 429)
export const SmsBudgetExhaustedError = createError('SECURELOGIN_SMS_BUDGET_EXHAUSTED', 'No codes can be sent right now; retry in %d seconds', 503)
export const RateLimitedError = createError('SECURELOGIN_RATE_LIMITED', 'Too many requests; retry in %d seconds', 429)

export const TokenMissingError = createError('SECURELOGIN_TOKEN_MISSING', 'An "Authorization: Bearer <token>" header is required', 401)
export const TokenInvalidError = createError('SECURELOGIN_TOKEN_INVALID', 'The token is invalid', 401)
export const TokenExpiredError = createError('SECURELOGIN_TOKEN_EXPIRED', 'The token has expired', 401)
export const SessionRevokedError = createError('SECURELOGIN_SESSION_REVOKED', 'The session has ended; sign in again', 401)
export const SessionExpiredError = createError('SECURELOGIN_SESSION_EXPIRED', 'The session has expired after a time without use; sign in again', 401)
export const FreshTokenRequiredError = createError('SECURELOGIN_FRESH_TOKEN_REQUIRED', 'This operation needs a token from a fresh sign-in', 401)
export const SessionMismatchError = createError('SECURELOGIN_SESSION_MISMATCH', 'The refresh token does not belong to this session', 403)
export const RefreshSupersededError = createError('SECURELOGIN_REFRESH_SUPERSEDED', 'This refresh token was just exchanged by another request; use the newer refresh token', 409)
export const CookieOriginRefusedError = createError('SECURELOGIN_COOKIE_ORIGIN_REFUSED', 'This origin may not use the session cookies', 403)
export const AccountInactiveError = createError('SECURELOGIN_ACCOUNT_INACTIVE', 'The account is disabled', 403)
export const PhoneTakenError = createError('SECURELOGIN_PHONE_TAKEN', 'This number belongs to another account', 409)
export const PhoneUnchangedError = createError('SECURELOGIN_PHONE_UNCHANGED', 'This is already the account\'s number', 400)
export const SessionNotFoundError = createError('SECURELOGIN_SESSION_NOT_FOUND', 'No such session of yours is live', 404)
export const EmailTakenError = createError('SECURELOGIN_EMAIL_TAKEN', 'An account with this email exists already', 409)
export const PasswordIncorrectError = createError('SECURELOGIN_PASSWORD_INCORRECT', 'The current password is incorrect', 403)

export const SmsSendFailedError = createError('SECURELOGIN_SMS_SEND_FAILED', 'The code could not be sent; try again later', 502)
export const SmsTimeoutError = createError('SECURELOGIN_SMS_TIMEOUT', 'The code could not be sent in time; try again later', 504)
export const UnavailableError = createError('SECURELOGIN_UNAVAILABLE', 'The service is temporarily unavailable', 503)
export const InternalError = createError('SECURELOGIN_INTERNAL', 'Something went wrong; try again later', 500)

/** Every error class above, for documentation and the test that checks each code and status. */
export const errors = {
  BadRequestError,
  PhoneInvalidError,
  PhoneCountryNotAllowedError,
  PhoneTypeNotAllowedError,
  ClientAddressInvalidError,
  UserMismatchError,
  PasswordDisabledError,
  EmailInvalidError,
  PasswordPolicyError,
  PasswordBreachedError,
  CredentialsInvalidError,
  LoginLockedError,
  OtpInvalidError,
  OtpExpiredError,
  OtpAttemptsExceededError,
  OtpResendTooSoonError,
  RateLimitedError,
  PhoneLockedError,
  SmsBudgetExhaustedError,
  SendRefusedError,
  TokenMissingError,
  TokenInvalidError,
  TokenExpiredError,
  SessionRevokedError,
  SessionExpiredError,
  FreshTokenRequiredError,
  SessionMismatchError,
  RefreshSupersededError,
  CookieOriginRefusedError,
  AccountInactiveError,
  PhoneTakenError,
  PhoneUnchangedError,
  SessionNotFoundError,
  EmailTakenError,
  PasswordIncorrectError,
  SmsSendFailedError,
  SmsTimeoutError,
  UnavailableError,
  InternalError,
}

/** Attaches the tries left on the current code; the routes' error handler answers it as `attempts_left`. */
export function withAttemptsLeft<T extends Error> (error: T, attemptsLeft: number): T & { attemptsLeft: number } {
  return Object.assign(error, { attemptsLeft: Math.max(0, attemptsLeft) })
}

/** Attaches the seconds a client should wait; the routes' error handler turns it into `Retry-After`. */
export function withRetryAfter<T extends Error> (error: T, seconds: number): T & { retryAfter: number } {
  return Object.assign(error, { retryAfter: seconds })
}
