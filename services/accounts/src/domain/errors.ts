/**
 * Every error the accounts API answers with: a stable contract code and an HTTP status. Domain code
 * throws these; entry-points/http/error-handler.ts is the one place that turns them into responses.
 */
export class AccountsError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly details?: unknown[],
    /** Response headers the client needs to act on the error (Retry-After). */
    readonly headers: Record<string, string> = {},
  ) {
    super(message);
    this.name = new.target.name;
  }
}

export class ValidationFailedError extends AccountsError {
  constructor(details: unknown[]) {
    super(400, 'validation_failed', 'the request body is invalid', details);
  }
}

export class InvalidReferralCodeError extends AccountsError {
  constructor() {
    super(400, 'invalid_referral_code', 'referral_code does not name an existing user', [
      { path: 'referral_code', message: 'unknown referral code' },
    ]);
  }
}

export class EmailTakenError extends AccountsError {
  constructor() {
    super(409, 'email_taken', 'an account with this email already exists');
  }
}

export class TooManyRegistrationsError extends AccountsError {
  constructor(retryAfterS: number) {
    super(429, 'too_many_registrations', 'too many registrations from this network; try again later', undefined, {
      'Retry-After': String(retryAfterS),
    });
  }
}

export class InvalidCredentialsError extends AccountsError {
  constructor() {
    super(401, 'invalid_credentials', 'email or password is wrong');
  }
}

export class TooManyAttemptsError extends AccountsError {
  constructor(retryAfterS?: number) {
    super(
      429,
      'too_many_attempts',
      'too many failed attempts; try again later',
      undefined,
      retryAfterS === undefined ? {} : { 'Retry-After': String(retryAfterS) },
    );
  }
}

export class InvalidTokenError extends AccountsError {
  constructor() {
    super(401, 'invalid_token', 'the token is missing or invalid');
  }
}

export class TokenExpiredError extends AccountsError {
  constructor() {
    super(401, 'token_expired', 'the token has expired');
  }
}

export class TokenReusedError extends AccountsError {
  constructor() {
    super(401, 'token_reused', 'this refresh token was already used; its session has been revoked');
  }
}

export class InvalidCodeError extends AccountsError {
  constructor() {
    super(400, 'invalid_code', 'the confirmation code is wrong');
  }
}

export class CodeExpiredError extends AccountsError {
  constructor() {
    super(400, 'code_expired', 'the confirmation code has expired; request a new one');
  }
}

export class AlreadyConfirmedError extends AccountsError {
  constructor() {
    super(409, 'already_confirmed', 'the email address is already confirmed');
  }
}

export class ResendCooldownError extends AccountsError {
  constructor(retryAfterS: number) {
    super(429, 'resend_cooldown', 'a confirmation email was sent recently; try again later', undefined, {
      'Retry-After': String(retryAfterS),
    });
  }
}

export class UnavailableError extends AccountsError {
  constructor() {
    super(503, 'unavailable', 'the service is temporarily unavailable; try again later', undefined, {
      'Retry-After': '5',
    });
  }
}
