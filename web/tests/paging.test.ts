import { describe, expect, it } from 'vitest';
import { type Page, Pager } from '../src/api/paging';

type Item = { id: number };

function pages(...lists: number[][]): (cursor: string | null) => Promise<Page<Item>> {
  return async (cursor) => {
    const index = cursor === null ? 0 : Number(cursor);
    return {
      items: lists[index].map((id) => ({ id })),
      next_cursor: index + 1 < lists.length ? String(index + 1) : null,
    };
  };
}

function deferred<T>() {
  let resolve!: (value: T) => void;
  const promise = new Promise<T>((r) => {
    resolve = r;
  });
  return { promise, resolve };
}

describe('Pager', () => {
  it('follows next_cursor page by page until it is null', async () => {
    const pager = new Pager(pages([1, 2], [3, 4], [5]));
    await pager.loadMore();
    expect(pager.current.items.map((i) => i.id)).toEqual([1, 2]);
    expect(pager.current.done).toBe(false);
    await pager.loadMore();
    await pager.loadMore();
    expect(pager.current.items.map((i) => i.id)).toEqual([1, 2, 3, 4, 5]);
    expect(pager.current.done).toBe(true);
  });

  it('sends the cursor it was given', async () => {
    const seen: (string | null)[] = [];
    const pager = new Pager<Item>(async (cursor) => {
      seen.push(cursor);
      return { items: [{ id: seen.length }], next_cursor: seen.length < 2 ? 'abc' : null };
    });
    await pager.loadMore();
    await pager.loadMore();
    await pager.loadMore();
    expect(seen).toEqual([null, 'abc']);
  });

  it('runs one request at a time', async () => {
    let calls = 0;
    const gate = deferred<Page<Item>>();
    const pager = new Pager<Item>(() => {
      calls += 1;
      return gate.promise;
    });
    const first = pager.loadMore();
    const second = pager.loadMore();
    gate.resolve({ items: [{ id: 1 }], next_cursor: null });
    await Promise.all([first, second]);
    expect(calls).toBe(1);
  });

  it('shows an item that moved between pages once', async () => {
    const pager = new Pager(pages([1, 2], [2, 3]));
    await pager.loadMore();
    await pager.loadMore();
    expect(pager.current.items.map((i) => i.id)).toEqual([1, 2, 3]);
  });

  it('drops a page answered after a reset (filters changed meanwhile)', async () => {
    const old = deferred<Page<Item>>();
    const pager = new Pager<Item>(() => old.promise);
    const stale = pager.loadMore();
    pager.reset(pages([10]));
    const fresh = pager.loadMore();
    old.resolve({ items: [{ id: 99 }], next_cursor: 'x' });
    await Promise.all([stale, fresh]);
    expect(pager.current.items.map((i) => i.id)).toEqual([10]);
    expect(pager.current.done).toBe(true);
  });

  it('keeps what it has and the error when a page fails, and retries', async () => {
    let fail = true;
    const pager = new Pager<Item>(async (cursor) => {
      if (cursor === 'next' && fail) throw new Error('offline');
      return cursor === null ? { items: [{ id: 1 }], next_cursor: 'next' } : { items: [{ id: 2 }], next_cursor: null };
    });
    await pager.loadMore();
    await pager.loadMore();
    expect(pager.current.error).toBeInstanceOf(Error);
    expect(pager.current.items.map((i) => i.id)).toEqual([1]);
    fail = false;
    await pager.loadMore();
    expect(pager.current.error).toBeNull();
    expect(pager.current.items.map((i) => i.id)).toEqual([1, 2]);
  });

  it('updates, removes, prepends and appends items in place', async () => {
    const pager = new Pager<{ id: number; title?: string }>(pages([1, 2, 3]));
    await pager.loadMore();
    pager.update({ id: 2, title: 'new' });
    pager.update({ id: 3 }, false);
    pager.remove(1);
    pager.prepend({ id: 7 });
    pager.append({ id: 8 });
    expect(pager.current.items).toEqual([{ id: 7 }, { id: 2, title: 'new' }, { id: 8 }]);
  });

  it('tells its listener about every change', async () => {
    const states: boolean[] = [];
    const pager = new Pager(pages([1]), (state) => states.push(state.loading));
    await pager.loadMore();
    expect(states).toEqual([true, false]);
  });
});
