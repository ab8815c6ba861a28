import { describe, expect, it } from 'vitest';
import { ApiError, NETWORK_ERROR } from '../src/api/errors';
import {
  IdempotentAction,
  keyStaysValid,
  newIdempotencyKey,
  retryDelayMs,
  retrying,
  shouldRetry,
} from '../src/api/idempotency';

const network = () => new ApiError(NETWORK_ERROR, 'Cannot reach the server');
const running = (seconds = 1) => new ApiError(409, 'still running', seconds);

/** A server that fails with the given errors first, then answers with the key it saw. */
function flaky(...failures: ApiError[]) {
  const keys: string[] = [];
  const send = async (key: string) => {
    keys.push(key);
    const failure = failures.shift();
    if (failure) throw failure;
    return { created: key };
  };
  return { keys, send };
}

function counter() {
  let n = 0;
  return () => `key-${++n}`;
}

const noWait = { sleep: async () => {} };

describe('retrying', () => {
  it('sends again after a network error and a 409 "still running"', async () => {
    const server = flaky(network(), running());
    const waits: number[] = [];
    const result = await retrying(() => server.send('k'), { sleep: async (ms) => void waits.push(ms) });
    expect(result).toEqual({ created: 'k' });
    expect(server.keys).toHaveLength(3);
    expect(waits).toEqual([500, 1000]);
  });

  it('stops after the attempts and throws the last error', async () => {
    const server = flaky(network(), network(), network(), network());
    await expect(retrying(() => server.send('k'), { ...noWait, attempts: 3 })).rejects.toMatchObject({ status: 0 });
    expect(server.keys).toHaveLength(3);
  });

  it('does not retry an answer that is final', async () => {
    for (const error of [new ApiError(422, 'bad'), new ApiError(409, 'name taken'), new ApiError(500, 'oops')]) {
      const server = flaky(error);
      await expect(retrying(() => server.send('k'), noWait)).rejects.toBe(error);
      expect(server.keys).toHaveLength(1);
    }
  });
});

describe('retry rules', () => {
  it('retries no answer and 409 with Retry-After only', () => {
    expect(shouldRetry(network())).toBe(true);
    expect(shouldRetry(running())).toBe(true);
    expect(shouldRetry(new ApiError(409, 'already a member'))).toBe(false);
    expect(shouldRetry(new ApiError(429, 'slow down', 3))).toBe(false);
    expect(shouldRetry(new Error('not an API error'))).toBe(false);
  });

  it('keeps the key for answers the server does not store', () => {
    expect(keyStaysValid(network())).toBe(true);
    expect(keyStaysValid(new ApiError(409, 'x'))).toBe(true);
    expect(keyStaysValid(new ApiError(429, 'x', 2))).toBe(true);
    expect(keyStaysValid(new ApiError(503, 'x'))).toBe(true);
    expect(keyStaysValid(new ApiError(422, 'x'))).toBe(false);
    expect(keyStaysValid(new ApiError(403, 'x'))).toBe(false);
  });

  it('waits Retry-After for a running request, capped, and doubles after network errors', () => {
    expect(retryDelayMs(running(2), 1, 500, 5000)).toBe(2000);
    expect(retryDelayMs(running(60), 1, 500, 5000)).toBe(5000);
    expect(retryDelayMs(running(0), 1, 500, 5000)).toBe(500);
    expect(retryDelayMs(network(), 3, 500, 5000)).toBe(2000);
  });
});

describe('IdempotentAction', () => {
  it('sends every retry of one action with the same key', async () => {
    const action = new IdempotentAction(noWait, counter());
    const server = flaky(network(), running());
    await action.run({ title: 'a' }, server.send);
    expect(server.keys).toEqual(['key-1', 'key-1', 'key-1']);
  });

  it('takes a new key for the next action after a success', async () => {
    const action = new IdempotentAction(noWait, counter());
    const server = flaky();
    await action.run({ title: 'a' }, server.send);
    await action.run({ title: 'a' }, server.send);
    expect(server.keys).toEqual(['key-1', 'key-2']);
  });

  it('reuses the key when the person sends the same request again after a network failure', async () => {
    const action = new IdempotentAction({ ...noWait, attempts: 1 }, counter());
    const server = flaky(network());
    await expect(action.run({ title: 'a' }, server.send)).rejects.toMatchObject({ status: 0 });
    await action.run({ title: 'a' }, server.send);
    expect(server.keys).toEqual(['key-1', 'key-1']);
  });

  it('takes a new key when the request changed, or after an answer the server kept', async () => {
    const action = new IdempotentAction({ ...noWait, attempts: 1 }, counter());
    const server = flaky(network(), new ApiError(422, 'title: too long'));
    await expect(action.run({ title: 'a' }, server.send)).rejects.toBeTruthy();
    await expect(action.run({ title: 'b' }, server.send)).rejects.toMatchObject({ status: 422 });
    await action.run({ title: 'b' }, server.send);
    expect(server.keys).toEqual(['key-1', 'key-2', 'key-3']);
  });
});

describe('newIdempotencyKey', () => {
  it('is a valid key (1-255 visible ASCII), different each time', () => {
    const keys = new Set(Array.from({ length: 50 }, () => newIdempotencyKey()));
    expect(keys.size).toBe(50);
    for (const key of keys) expect(key).toMatch(/^[\x21-\x7e]{1,255}$/);
  });

  it('has 128 random bits without randomUUID (plain http on a LAN address)', () => {
    // Only getRandomValues, as in a page that is not a secure context.
    const insecure: Pick<Crypto, 'getRandomValues'> = { getRandomValues: (array) => crypto.getRandomValues(array) };
    const key = newIdempotencyKey(insecure);
    expect(key).toMatch(/^[0-9a-f]{32}$/);
    expect(newIdempotencyKey(insecure)).not.toBe(key);
  });
});
