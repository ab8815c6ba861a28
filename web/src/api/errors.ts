// What a failed request means to a person: one message per status, with when to retry.

export class ApiError extends Error {
  readonly status: number;
  readonly detail: string;
  /** Seconds to wait before trying again (Retry-After), when the server said so. */
  readonly retryAfter: number | null;

  constructor(status: number, detail: string, retryAfter: number | null = null) {
    super(detail);
    this.name = 'ApiError';
    this.status = status;
    this.detail = detail;
    this.retryAfter = retryAfter;
  }
}

/** Status 0: the request never got an answer. */
export const NETWORK_ERROR = 0;

type ValidationItem = { loc?: (string | number)[]; msg?: string };

function detailOf(body: unknown): string {
  if (body && typeof body === 'object' && 'detail' in body) {
    const detail = (body as { detail: unknown }).detail;
    if (typeof detail === 'string') return detail;
    if (Array.isArray(detail) && detail.length > 0) {
      // FastAPI's 422 list: the first problem, named by its field.
      const first = detail[0] as ValidationItem;
      const field = first.loc?.filter((part) => part !== 'body').join('.');
      return field ? `${field}: ${first.msg ?? 'invalid'}` : (first.msg ?? 'Invalid request');
    }
  }
  return '';
}

export function parseRetryAfter(value: string | null, now = Date.now()): number | null {
  if (!value) return null;
  const seconds = Number(value);
  if (Number.isFinite(seconds)) return Math.max(0, Math.ceil(seconds));
  const date = Date.parse(value);
  return Number.isNaN(date) ? null : Math.max(0, Math.ceil((date - now) / 1000));
}

export function apiError(status: number, body: unknown, headers?: Headers): ApiError {
  return new ApiError(status, detailOf(body), parseRetryAfter(headers?.get('Retry-After') ?? null));
}

export async function errorFromResponse(response: Response): Promise<ApiError> {
  let body: unknown = null;
  try {
    body = await response.json();
  } catch {
    // not JSON (a proxy's page): the status says enough
  }
  return apiError(response.status, body, response.headers);
}

function seconds(n: number): string {
  return n === 1 ? '1 second' : `${n} seconds`;
}

/** What a status means on one screen, when the general sentence would mislead (a 404 of
 * "add a member" is an unknown username, not a deleted page). */
export type ErrorMessages = Partial<Record<number, string>>;

/** The sentence shown to the user for any error thrown by a request. */
export function describeError(error: unknown, messages: ErrorMessages = {}): string {
  if (!(error instanceof ApiError)) {
    return 'Cannot reach the server. Check your connection and try again.';
  }
  const { status, detail, retryAfter } = error;
  const special = messages[status];
  if (special) return special;
  switch (status) {
    case NETWORK_ERROR:
      return 'Cannot reach the server. Check your connection and try again.';
    case 401:
      return detail || 'Your session has ended. Please sign in again.';
    case 404:
      return 'Not found: it may have been deleted, or it is no longer shared with you.';
    case 403:
      return detail || 'Your role in this project does not allow this.';
    case 412:
      return 'This task was changed by someone else. Reload it to see the latest version.';
    case 429:
      return retryAfter !== null
        ? `Too many requests. Try again in ${seconds(retryAfter)}.`
        : 'Too many requests. Try again in a moment.';
    case 503:
      return retryAfter !== null
        ? `The service is busy. Try again in ${seconds(retryAfter)}.`
        : 'The service is busy. Try again in a moment.';
    default:
      if (status >= 500) return 'Something went wrong on the server. Try again later.';
      return detail || `The request failed (${status}).`;
  }
}
