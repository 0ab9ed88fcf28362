// Domain errors. Services throw these; the HTTP layer (src/server/server-errors.ts) maps them to
// RFC 9457 problem+json and the CLI maps them to exit codes. Messages never carry secret values.

export type TErrorDetail = { readonly path?: string; readonly message: string; readonly location?: string };

export class DomainError extends Error {
  readonly details: readonly TErrorDetail[];
  constructor(message: string, details: readonly TErrorDetail[] = [], options?: ErrorOptions) {
    super(message, options);
    this.name = new.target.name;
    this.details = details;
  }
}

/** The input was malformed (HTTP 400, CLI exit 2 for usage, 1 otherwise). */
export class ValidationError extends DomainError {}
/** No valid credentials were presented (HTTP 401). */
export class UnauthenticatedError extends DomainError {}
/** The actor is known but not allowed to do this (HTTP 403). */
export class ForbiddenError extends DomainError {}
/** The target does not exist (HTTP 404). */
export class NotFoundError extends DomainError {}
/** The request conflicts with current state (HTTP 409). */
export class ConflictError extends DomainError {}
/** Too many attempts (HTTP 429). */
export class RateLimitedError extends DomainError {
  constructor(
    message: string,
    readonly retryAfterSeconds: number,
  ) {
    super(message);
  }
}
/** A mandatory control or gate refused the change (HTTP 422, CLI exit 3). */
export class PolicyViolation extends DomainError {}
/** A service carehost depends on (an organization's identity provider) could not be reached or answered wrongly (HTTP 502). */
export class UpstreamError extends DomainError {}
/** Stored data failed an integrity check (HTTP 500, CLI exit 1). */
export class IntegrityError extends DomainError {}
