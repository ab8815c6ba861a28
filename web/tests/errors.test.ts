import { describe, expect, it } from 'vitest';
import { ApiError, NETWORK_ERROR, apiError, describeError, parseRetryAfter } from '../src/api/errors';

describe('apiError', () => {
  it('keeps the detail message of an error body', () => {
    const error = apiError(409, { detail: 'Username is already taken' });
    expect(error.status).toBe(409);
    expect(describeError(error)).toBe('Username is already taken');
  });

  it('names the field of the first validation problem', () => {
    const body = { detail: [{ loc: ['body', 'title'], msg: 'String should have at least 1 character' }] };
    expect(describeError(apiError(422, body))).toBe('title: String should have at least 1 character');
  });

  it('reads Retry-After', () => {
    const error = apiError(429, { detail: 'Too many' }, new Headers({ 'Retry-After': '42' }));
    expect(error.retryAfter).toBe(42);
  });
});

describe('describeError', () => {
  it('says when to retry a 429', () => {
    expect(describeError(new ApiError(429, 'x', 30))).toBe('Too many requests. Try again in 30 seconds.');
    expect(describeError(new ApiError(429, 'x', 1))).toBe('Too many requests. Try again in 1 second.');
    expect(describeError(new ApiError(429, 'x'))).toBe('Too many requests. Try again in a moment.');
  });

  it('says the service is busy on a 503', () => {
    expect(describeError(new ApiError(503, 'Database unavailable', 5))).toBe(
      'The service is busy. Try again in 5 seconds.',
    );
    expect(describeError(new ApiError(503, ''))).toBe('The service is busy. Try again in a moment.');
  });

  it('explains a 412 as someone else\'s change', () => {
    expect(describeError(new ApiError(412, 'If-Match does not match'))).toMatch(/changed by someone else/);
  });

  it('never shows a server error\'s text', () => {
    expect(describeError(new ApiError(500, 'Internal server error'))).toBe(
      'Something went wrong on the server. Try again later.',
    );
  });

  it('reports an unreachable server', () => {
    expect(describeError(new ApiError(NETWORK_ERROR, ''))).toMatch(/Cannot reach the server/);
    expect(describeError(new TypeError('Failed to fetch'))).toMatch(/Cannot reach the server/);
  });
});

describe('parseRetryAfter', () => {
  it('takes seconds or an HTTP date', () => {
    const now = Date.parse('2026-12-06T10:00:00Z');
    expect(parseRetryAfter('7', now)).toBe(7);
    expect(parseRetryAfter('Sun, 06 Dec 2026 10:00:30 GMT', now)).toBe(30);
    expect(parseRetryAfter(null, now)).toBeNull();
    expect(parseRetryAfter('soon', now)).toBeNull();
  });
});

describe('describeError with the messages of a screen', () => {
  it('says what a status means there, over the general sentence', () => {
    const messages = { 404: 'No active user is called “zoe”.' };
    expect(describeError(new ApiError(404, 'No active user with this username'), messages)).toBe(
      'No active user is called “zoe”.',
    );
  });

  it('keeps the general sentence for the other statuses', () => {
    const messages = { 404: 'No such user.' };
    expect(describeError(new ApiError(409, 'This user is already a member of the project'), messages)).toBe(
      'This user is already a member of the project',
    );
    expect(describeError(new ApiError(429, 'x', 3), messages)).toBe('Too many requests. Try again in 3 seconds.');
  });

  it("shows the server's reason for a 403 (the role needed), or says it is the role", () => {
    expect(describeError(new ApiError(403, 'This needs the editor role (or higher) in the project'))).toBe(
      'This needs the editor role (or higher) in the project',
    );
    expect(describeError(new ApiError(403, ''))).toBe('Your role in this project does not allow this.');
  });
});
