// The typed API client: openapi-fetch over the types openapi-typescript generated from
// /openapi.json (schema.d.ts; `make web-client` regenerates it, `make lint` checks it).
import createClient from 'openapi-fetch';
import { type Session, browserSession } from '../auth/session';
import { ApiError, NETWORK_ERROR, apiError } from './errors';
import type { components, paths } from './schema';

export type Schemas = components['schemas'];
export type Task = Schemas['TaskRead'];
export type Comment = Schemas['CommentRead'];
export type Notification = Schemas['NotificationRead'];
export type User = Schemas['UserRead'];
export type Priority = Task['priority'];

export const session: Session = browserSession();

export const api = createClient<paths>({
  baseUrl: typeof location === 'undefined' ? 'http://localhost' : location.origin,
  fetch: (request) => session.fetch(request),
});

interface Result<T> {
  data?: T;
  error?: unknown;
  response: Response;
}

/** The data of a successful answer, or an ApiError (with Retry-After) for any other. */
export async function unwrap<T>(call: Promise<Result<T>>): Promise<T> {
  let result: Result<T>;
  try {
    result = await call;
  } catch {
    throw new ApiError(NETWORK_ERROR, 'Cannot reach the server');
  }
  if (!result.response.ok) throw apiError(result.response.status, result.error, result.response.headers);
  return result.data as T;
}

/** The task's version as an If-Match value (API.md: ETag "<version>"). */
export function ifMatch(task: Pick<Task, 'version'>): string {
  return `"${task.version}"`;
}
