import { describe, expect, it } from 'vitest';
import { ApiError } from '../src/api/errors';
import { EVENT_TYPES, formatDuration, sortEvents, urlError } from '../src/api/webhooks';

describe('urlError', () => {
  it('puts a refused target (the service 422: a string) on the URL field', () => {
    const refused = new ApiError(422, 'The host 10.0.0.5 is a private address');
    expect(urlError(refused)).toBe('The host 10.0.0.5 is a private address');
  });

  it("puts FastAPI's url problem there without its field name", () => {
    expect(urlError(new ApiError(422, 'url: String should have at most 2000 characters'))).toBe(
      'String should have at most 2000 characters',
    );
  });

  it('leaves an events problem and other statuses to the form', () => {
    expect(urlError(new ApiError(422, 'events: List should have at least 1 item'))).toBeNull();
    expect(urlError(new ApiError(403, 'admin needed'))).toBeNull();
    expect(urlError(new Error('offline'))).toBeNull();
  });
});

describe('sortEvents', () => {
  it("keeps the API's order and drops unknown types", () => {
    expect(sortEvents(['member.added', 'task.created', 'ping'])).toEqual(['task.created', 'member.added']);
    expect(sortEvents([...EVENT_TYPES].reverse())).toEqual(EVENT_TYPES);
  });
});

describe('formatDuration', () => {
  it('reads milliseconds and seconds', () => {
    expect(formatDuration(8)).toBe('8 ms');
    expect(formatDuration(3240)).toBe('3.2 s');
    expect(formatDuration(null)).toBe('');
  });
});
