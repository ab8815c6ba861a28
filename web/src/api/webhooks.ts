// Webhooks (API.md "v2 Webhooks"): the event types a webhook subscribes to, and where a
// refused request belongs on the form.
import { ApiError } from './errors';
import type { components } from './schema';

export type Webhook = components['schemas']['WebhookRead'];
export type WebhookWithSecret = components['schemas']['WebhookWithSecret'];
export type Delivery = components['schemas']['DeliveryRead'];
export type EventType = components['schemas']['WebhookCreate']['events'][number];

export const EVENT_TYPES: EventType[] = [
  'task.created',
  'task.updated',
  'task.completed',
  'task.deleted',
  'task.restored',
  'comment.created',
  'comment.deleted',
  'member.added',
  'member.removed',
];

/** The API's order, whatever order the boxes were ticked in. */
export function sortEvents(events: readonly string[]): EventType[] {
  return EVENT_TYPES.filter((type) => events.includes(type));
}

/**
 * The URL field's message for a refused request, or null when the error belongs to the form.
 * A 422 is about the URL (a refused target: private address, not http(s), unresolvable)
 * unless FastAPI named another field.
 */
export function urlError(error: unknown): string | null {
  if (!(error instanceof ApiError) || error.status !== 422) return null;
  if (/^events\b/.test(error.detail)) return null;
  return error.detail.replace(/^url: /, '') || 'This URL cannot be used.';
}

/** "3.2 s" or "120 ms". */
export function formatDuration(ms: number | null): string {
  if (ms === null) return '';
  return ms >= 1000 ? `${(ms / 1000).toFixed(1)} s` : `${Math.round(ms)} ms`;
}
