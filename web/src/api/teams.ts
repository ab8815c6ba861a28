// The role table of API.md (v2 Projects and sharing) as the screens need it: what a role may
// do, which roles a member may be given, and the task list's filters as a query. The server
// decides; these only hide the controls a user may not use (a 403 is still shown).
import type { components } from './schema';

export type Role = components['schemas']['Role'];
export type Project = components['schemas']['ProjectRead'];
export type Member = components['schemas']['MemberRead'];

export const ROLES: Role[] = ['viewer', 'commenter', 'editor', 'admin', 'owner'];
/** Roles given when adding a member (owner is handed over, never given this way). */
export const GIVEN_ROLES: Exclude<Role, 'owner'>[] = ['viewer', 'commenter', 'editor', 'admin'];

export function atLeast(role: Role | null | undefined, needed: Role): boolean {
  return role != null && ROLES.indexOf(role) >= ROLES.indexOf(needed);
}

export const can = {
  comment: (role: Role | null | undefined) => atLeast(role, 'commenter'),
  editTasks: (role: Role | null | undefined) => atLeast(role, 'editor'),
  manage: (project: Project) => !project.is_inbox && atLeast(project.role, 'admin'),
  deleteProject: (project: Project) => !project.is_inbox && project.role === 'owner',
  deleteComment: (role: Role | null | undefined, isAuthor: boolean) =>
    isAuthor || atLeast(role, 'admin'),
};

/**
 * The roles `mine` may give a member who holds `theirs` (their current one included), or
 * none when their role is not mine to change: admin+ for roles up to admin; only the owner
 * changes an admin or hands ownership over; nobody changes the owner's role directly.
 */
export function assignableRoles(mine: Role, theirs: Role): Role[] {
  if (!atLeast(mine, 'admin') || theirs === 'owner') return [];
  if (mine === 'owner') return ROLES;
  if (theirs === 'admin') return [];
  return GIVEN_ROLES;
}

/** Whether I may remove this member: myself (leaving) or, admin+, anyone but the owner. */
export function canRemove(mine: Role, member: Member, myId: number): boolean {
  if (member.role === 'owner') return false;
  return member.user_id === myId || atLeast(mine, 'admin');
}

/** Whose tasks the list shows: anyone's, mine, nobody's, or one member's (by id). */
export type AssigneeFilter = 'anyone' | 'me' | 'unassigned' | number;

export function assigneeQuery(
  filter: AssigneeFilter,
  myId: number | null,
): { assignee_id?: number; unassigned?: true } {
  if (filter === 'unassigned') return { unassigned: true };
  if (filter === 'me') return myId === null ? {} : { assignee_id: myId };
  if (typeof filter === 'number') return { assignee_id: filter };
  return {};
}

/** The select's value for an assignee filter, and back (a select holds strings). */
export function assigneeFromValue(value: string): AssigneeFilter {
  if (value === 'anyone' || value === 'me' || value === 'unassigned') return value;
  const id = Number(value);
  return Number.isInteger(id) && id > 0 ? id : 'anyone';
}

/** A project id from the address (`/?project=3`), or null. */
export function projectFromQuery(value: string | undefined): number | null {
  const id = Number(value);
  return value && Number.isInteger(id) && id > 0 ? id : null;
}

/** Every page of a cursor-paged list (projects and members are short lists). */
export async function allPages<T>(
  fetchPage: (cursor: string | null) => Promise<{ items: T[]; next_cursor?: string | null }>,
  maxPages = 50,
): Promise<T[]> {
  const items: T[] = [];
  let cursor: string | null = null;
  for (let page = 0; page < maxPages; page++) {
    const result: { items: T[]; next_cursor?: string | null } = await fetchPage(cursor);
    items.push(...result.items);
    cursor = result.next_cursor ?? null;
    if (cursor === null) break;
  }
  return items;
}

/** A project's name for people: the inbox is "Inbox" whatever its stored name; one not in
 * the loaded list is one you left (or that was deleted); before the list is in, "…". */
export function projectLabel(project: Pick<Project, 'name' | 'is_inbox'> | undefined, loaded = true): string {
  if (!project) return loaded ? 'a project you left' : '…';
  return project.is_inbox ? 'Inbox' : project.name;
}

/** A user's name from the members we know of, "you" for the caller, else by id. */
export function personLabel(
  userId: number | null,
  names: ReadonlyMap<number, string>,
  myId: number | null,
): string {
  if (userId === null) return 'nobody';
  if (userId === myId) return 'you';
  return names.get(userId) ?? `user ${userId}`;
}
