// A task's history (API.md "v2 History") in words: what kind of change, and each changed
// field from -> to, with dates, people and projects by name rather than raw JSON.
import type { components } from './schema';
import { personLabel } from './teams';

export type TaskEvent = components['schemas']['TaskEventRead'];
export type TaskEventKind = TaskEvent['kind'];

export interface HistoryContext {
  /** user id -> username (the project's members). */
  names: ReadonlyMap<number, string>;
  myId: number | null;
  projectName: (id: number) => string;
  formatDate: (iso: string) => string;
}

export const KIND_LABELS: Record<TaskEventKind, string> = {
  created: 'created the task',
  updated: 'edited the task',
  completed: 'completed the task',
  reopened: 'reopened the task',
  moved: 'moved the task',
  assigned: 'changed the assignee',
  deleted: 'moved the task to the trash',
  restored: 'restored the task from the trash',
  commented: 'commented',
  comment_deleted: 'deleted a comment',
};

const FIELD_LABELS: Record<string, string> = {
  title: 'Title',
  description: 'Description',
  completed: 'Completed',
  completed_at: 'Completed at',
  priority: 'Priority',
  due_at: 'Due',
  tags: 'Tags',
  project_id: 'Project',
  assignee_id: 'Assignee',
};
// The order a person reads a task in (the API's map has no order to keep).
const FIELD_ORDER = Object.keys(FIELD_LABELS);
const LONG_TEXT = 80;

export interface FieldChange {
  field: string;
  label: string;
  /** null for a field set from nothing (a new task): only the new value is worth showing. */
  from: string | null;
  to: string;
}

function isEmpty(value: unknown): boolean {
  return value === null || value === undefined || value === '' || (Array.isArray(value) && value.length === 0);
}

function shorten(text: string): string {
  return text.length > LONG_TEXT ? `${text.slice(0, LONG_TEXT - 1)}…` : text;
}

/** One field's value for people: "no date", "nobody", a project's name, "#a #b", … */
export function formatValue(field: string, value: unknown, context: HistoryContext): string {
  switch (field) {
    case 'due_at':
    case 'completed_at':
      return typeof value === 'string' && value ? context.formatDate(value) : field === 'due_at' ? 'no date' : 'not completed';
    case 'assignee_id':
      return personLabel(typeof value === 'number' ? value : null, context.names, context.myId);
    case 'project_id':
      return typeof value === 'number' ? context.projectName(value) : 'no project';
    case 'completed':
      return value ? 'yes' : 'no';
    case 'tags':
      return Array.isArray(value) && value.length ? value.map((tag) => `#${String(tag)}`).join(' ') : 'no tags';
    default:
      if (isEmpty(value)) return field === 'description' ? 'empty' : 'none';
      return shorten(typeof value === 'string' ? value : JSON.stringify(value));
  }
}

function orderOf(field: string): number {
  const index = FIELD_ORDER.indexOf(field);
  return index === -1 ? FIELD_ORDER.length : index;
}

/** The changed fields of an event, in reading order. A new task lists what it was given. */
export function describeChanges(event: Pick<TaskEvent, 'kind' | 'changes'>, context: HistoryContext): FieldChange[] {
  const created = event.kind === 'created';
  return Object.entries(event.changes)
    .map(([field, change]) => [field, (change ?? {}) as { from?: unknown; to?: unknown }] as const)
    .filter(([field, change]) => !created || (!isEmpty(change.to) && change.to !== false && field !== 'project_id'))
    .sort(([a], [b]) => orderOf(a) - orderOf(b) || a.localeCompare(b))
    .map(([field, change]) => ({
      field,
      label: FIELD_LABELS[field] ?? field,
      from: created || change.from === undefined ? null : formatValue(field, change.from, context),
      to: formatValue(field, change.to, context),
    }));
}
