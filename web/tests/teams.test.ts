import { describe, expect, it } from 'vitest';
import {
  type Member,
  type Project,
  type Role,
  allPages,
  assignableRoles,
  assigneeFromValue,
  assigneeQuery,
  atLeast,
  can,
  canRemove,
  personLabel,
  projectFromQuery,
  projectLabel,
} from '../src/api/teams';

function project(role: Role, is_inbox = false): Project {
  return {
    id: 3,
    name: 'Launch',
    description: '',
    is_inbox,
    role,
    member_count: 2,
    created_at: '2026-01-01T00:00:00Z',
    updated_at: '2026-01-01T00:00:00Z',
    version: 1,
  };
}

function member(user_id: number, role: Role): Member {
  return { user_id, username: `user${user_id}`, role, added_at: '2026-01-01T00:00:00Z' };
}

describe('the role table', () => {
  it('orders the roles', () => {
    expect(atLeast('editor', 'commenter')).toBe(true);
    expect(atLeast('commenter', 'editor')).toBe(false);
    expect(atLeast('owner', 'admin')).toBe(true);
    expect(atLeast(null, 'viewer')).toBe(false);
  });

  it('lets a viewer read only, a commenter comment, an editor change tasks', () => {
    expect([can.comment('viewer'), can.editTasks('viewer')]).toEqual([false, false]);
    expect([can.comment('commenter'), can.editTasks('commenter')]).toEqual([true, false]);
    expect([can.comment('editor'), can.editTasks('editor')]).toEqual([true, true]);
  });

  it('lets admin+ manage a shared project, and only its owner delete it', () => {
    expect(can.manage(project('editor'))).toBe(false);
    expect(can.manage(project('admin'))).toBe(true);
    expect(can.deleteProject(project('admin'))).toBe(false);
    expect(can.deleteProject(project('owner'))).toBe(true);
  });

  it('never offers to manage or delete the inbox', () => {
    expect(can.manage(project('owner', true))).toBe(false);
    expect(can.deleteProject(project('owner', true))).toBe(false);
  });

  it('lets the author or an admin+ delete a comment', () => {
    expect(can.deleteComment('commenter', true)).toBe(true);
    expect(can.deleteComment('editor', false)).toBe(false);
    expect(can.deleteComment('admin', false)).toBe(true);
  });
});

describe('assignableRoles', () => {
  it('gives nothing below admin', () => {
    expect(assignableRoles('editor', 'viewer')).toEqual([]);
  });

  it('lets an admin set roles up to admin, but not change an admin', () => {
    expect(assignableRoles('admin', 'viewer')).toEqual(['viewer', 'commenter', 'editor', 'admin']);
    expect(assignableRoles('admin', 'admin')).toEqual([]);
  });

  it('lets the owner change an admin and hand ownership over', () => {
    expect(assignableRoles('owner', 'admin')).toEqual(['viewer', 'commenter', 'editor', 'admin', 'owner']);
  });

  it("never changes the owner's role directly", () => {
    expect(assignableRoles('owner', 'owner')).toEqual([]);
  });
});

describe('canRemove', () => {
  it('lets any member leave, except the owner', () => {
    expect(canRemove('viewer', member(7, 'viewer'), 7)).toBe(true);
    expect(canRemove('owner', member(7, 'owner'), 7)).toBe(false);
  });

  it('lets admin+ remove others, never the owner', () => {
    expect(canRemove('admin', member(8, 'editor'), 7)).toBe(true);
    expect(canRemove('editor', member(8, 'viewer'), 7)).toBe(false);
    expect(canRemove('admin', member(8, 'owner'), 7)).toBe(false);
  });
});

describe('the assignee filter', () => {
  it('becomes the query of API.md', () => {
    expect(assigneeQuery('anyone', 7)).toEqual({});
    expect(assigneeQuery('me', 7)).toEqual({ assignee_id: 7 });
    expect(assigneeQuery('unassigned', 7)).toEqual({ unassigned: true });
    expect(assigneeQuery(12, 7)).toEqual({ assignee_id: 12 });
  });

  it('asks for nobody in particular before the user is known', () => {
    expect(assigneeQuery('me', null)).toEqual({});
  });

  it("reads a select's value back", () => {
    expect(assigneeFromValue('me')).toBe('me');
    expect(assigneeFromValue('12')).toBe(12);
    expect(assigneeFromValue('-1')).toBe('anyone');
    expect(assigneeFromValue('junk')).toBe('anyone');
  });
});

describe('projectFromQuery', () => {
  it('takes a positive id from the address, nothing else', () => {
    expect(projectFromQuery('3')).toBe(3);
    expect(projectFromQuery(undefined)).toBeNull();
    expect(projectFromQuery('')).toBeNull();
    expect(projectFromQuery('0')).toBeNull();
    expect(projectFromQuery('2.5')).toBeNull();
    expect(projectFromQuery('abc')).toBeNull();
  });
});

describe('allPages', () => {
  it('follows next_cursor to the end', async () => {
    const pages: Record<string, { items: number[]; next_cursor: string | null }> = {
      start: { items: [1, 2], next_cursor: 'b' },
      b: { items: [3], next_cursor: 'c' },
      c: { items: [4], next_cursor: null },
    };
    const asked: (string | null)[] = [];
    const items = await allPages(async (cursor) => {
      asked.push(cursor);
      return pages[cursor ?? 'start'];
    });
    expect(items).toEqual([1, 2, 3, 4]);
    expect(asked).toEqual([null, 'b', 'c']);
  });

  it('stops after maxPages, whatever the server says', async () => {
    let calls = 0;
    const items = await allPages(async () => {
      calls += 1;
      return { items: [calls], next_cursor: 'again' };
    }, 3);
    expect(items).toEqual([1, 2, 3]);
  });

  it('fails when a page fails', async () => {
    await expect(allPages(async () => Promise.reject(new Error('503')))).rejects.toThrow('503');
  });
});

describe('labels', () => {
  it('calls the inbox "Inbox", and a project no longer known so', () => {
    expect(projectLabel({ name: 'alice', is_inbox: true })).toBe('Inbox');
    expect(projectLabel({ name: 'Launch', is_inbox: false })).toBe('Launch');
    expect(projectLabel(undefined)).toBe('a project you left');
    expect(projectLabel(undefined, false)).toBe('…');
  });

  it('names people by the members we know', () => {
    const names = new Map([[8, 'bob']]);
    expect(personLabel(8, names, 7)).toBe('bob');
    expect(personLabel(7, names, 7)).toBe('you');
    expect(personLabel(9, names, 7)).toBe('user 9');
    expect(personLabel(null, names, 7)).toBe('nobody');
  });
});
