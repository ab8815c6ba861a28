// Idempotent retries (API.md "v2 Idempotent retries"): a write that creates something carries
// an `Idempotency-Key`, one per user action. The same action sent again (by the retry below,
// or by the person pressing the button again after a failure) reuses the key, so the server
// answers it once: a flaky network never makes two tasks out of one click.
import { ApiError, NETWORK_ERROR } from './errors';

export const IDEMPOTENCY_HEADER = 'Idempotency-Key';

type RandomSource = Pick<Crypto, 'getRandomValues'> & { randomUUID?: () => string };

/** 128 random bits. `randomUUID` exists in secure contexts only (https, localhost): the app
 * served over plain http on a LAN address falls back to getRandomValues, which always does. */
export function newIdempotencyKey(source: RandomSource = crypto): string {
  if (typeof source.randomUUID === 'function') return source.randomUUID();
  const bytes = source.getRandomValues(new Uint8Array(16));
  return Array.from(bytes, (byte) => byte.toString(16).padStart(2, '0')).join('');
}

/** 409 with Retry-After: the first request with this key is still running. */
function stillRunning(error: ApiError): boolean {
  return error.status === 409 && error.retryAfter !== null;
}

/** Worth sending again at once with the same key: no answer at all, or "still running". */
export function shouldRetry(error: unknown): error is ApiError {
  return error instanceof ApiError && (error.status === NETWORK_ERROR || stillRunning(error));
}

/** The server did not keep this answer (or we never saw one): the same request may go again
 * with the same key. Any other answer is kept for the key: a changed request needs a new one. */
export function keyStaysValid(error: unknown): boolean {
  if (!(error instanceof ApiError)) return true;
  const { status } = error;
  return status === NETWORK_ERROR || status === 409 || status === 429 || status >= 500;
}

export interface RetryOptions {
  /** Sends in all, the first included. */
  attempts?: number;
  /** The wait after the first network error; doubled after each next one. */
  backoffMs?: number;
  /** No single wait is longer (a Retry-After of a minute is not waited for). */
  maxWaitMs?: number;
  sleep?: (ms: number) => Promise<void>;
}

const sleepFor = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

export function retryDelayMs(error: ApiError, attempt: number, backoffMs: number, maxWaitMs: number): number {
  const wait = stillRunning(error) ? Math.max(backoffMs, (error.retryAfter ?? 0) * 1000) : backoffMs * 2 ** (attempt - 1);
  return Math.min(wait, maxWaitMs);
}

/** `send` until it succeeds, fails for good, or the attempts are spent (the last error). */
export async function retrying<T>(send: () => Promise<T>, options: RetryOptions = {}): Promise<T> {
  const { attempts = 3, backoffMs = 500, maxWaitMs = 5000, sleep = sleepFor } = options;
  for (let attempt = 1; ; attempt++) {
    try {
      return await send();
    } catch (error) {
      if (attempt >= attempts || !shouldRetry(error)) throw error;
      await sleep(retryDelayMs(error, attempt, backoffMs, maxWaitMs));
    }
  }
}

/**
 * One form's creating write. `run(request, send)` sends with a key: the previous one when
 * `request` (the body, as the server fingerprints it) is the same as last time and that
 * time's answer was not kept by the server; a new one otherwise.
 */
export class IdempotentAction {
  private key: string | null = null;
  private fingerprint = '';

  constructor(
    private readonly options: RetryOptions = {},
    private readonly makeKey: () => string = newIdempotencyKey,
  ) {}

  async run<T>(request: unknown, send: (key: string) => Promise<T>): Promise<T> {
    const fingerprint = JSON.stringify(request) ?? '';
    if (this.key === null || fingerprint !== this.fingerprint) {
      this.key = this.makeKey();
      this.fingerprint = fingerprint;
    }
    const key = this.key;
    try {
      const result = await retrying(() => send(key), this.options);
      this.key = null;
      return result;
    } catch (error) {
      if (!keyStaysValid(error)) this.key = null;
      throw error;
    }
  }
}

/** The request header for a key (openapi-fetch's `params.header`). */
export function idempotencyHeader(key: string): { 'Idempotency-Key': string } {
  return { [IDEMPOTENCY_HEADER]: key } as { 'Idempotency-Key': string };
}
