import { describe, expect, it } from 'vitest';
import { type HistoryContext, describeChanges, formatValue } from '../src/api/history';

const context: HistoryContext = {
  names: new Map([[7, 'ana']]),
  myId: 3,
  projectName: (id) => (id === 5 ? 'Garden' : `project ${id}`),
  formatDate: (iso) => `date(${iso})`,
};

describe('formatValue', () => {
  it('names people, projects and dates', () => {
    expect(formatValue('assignee_id', 7, context)).toBe('ana');
    expect(formatValue('assignee_id', 3, context)).toBe('you');
    expect(formatValue('assignee_id', 9, context)).toBe('user 9');
    expect(formatValue('assignee_id', null, context)).toBe('nobody');
    expect(formatValue('project_id', 5, context)).toBe('Garden');
    expect(formatValue('due_at', '2026-12-24T18:00:00Z', context)).toBe('date(2026-12-24T18:00:00Z)');
    expect(formatValue('due_at', null, context)).toBe('no date');
  });

  it('reads tags, flags, empty and long text', () => {
    expect(formatValue('tags', ['work', 'home'], context)).toBe('#work #home');
    expect(formatValue('tags', [], context)).toBe('no tags');
    expect(formatValue('completed', true, context)).toBe('yes');
    expect(formatValue('description', '', context)).toBe('empty');
    expect(formatValue('priority', 'urgent', context)).toBe('urgent');
    const long = formatValue('description', 'x'.repeat(200), context);
    expect(long).toHaveLength(80);
    expect(long.endsWith('…')).toBe(true);
  });
});

describe('describeChanges', () => {
  it('lists each changed field from -> to, in reading order', () => {
    const changes = describeChanges(
      {
        kind: 'updated',
        changes: { priority: { from: 'low', to: 'high' }, title: { from: 'a', to: 'b' } },
      },
      context,
    );
    expect(changes).toEqual([
      { field: 'title', label: 'Title', from: 'a', to: 'b' },
      { field: 'priority', label: 'Priority', from: 'low', to: 'high' },
    ]);
  });

  it('shows what a new task was given, not every empty field', () => {
    const changes = describeChanges(
      {
        kind: 'created',
        changes: {
          title: { from: null, to: 'Buy milk' },
          description: { from: null, to: '' },
          completed: { from: null, to: false },
          tags: { from: null, to: [] },
          project_id: { from: null, to: 5 },
          priority: { from: null, to: 'medium' },
        },
      },
      context,
    );
    expect(changes.map((c) => [c.label, c.from, c.to])).toEqual([
      ['Title', null, 'Buy milk'],
      ['Priority', null, 'medium'],
    ]);
  });

  it('has nothing to list for a comment event', () => {
    expect(describeChanges({ kind: 'commented', changes: {} }, context)).toEqual([]);
  });
});
