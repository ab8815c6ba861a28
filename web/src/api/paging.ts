// Cursor paging for infinite lists (API.md: `?cursor=` -> `{items, next_cursor}`).

export interface Page<T> {
  items: T[];
  next_cursor?: string | null;
}

export type FetchPage<T> = (cursor: string | null) => Promise<Page<T>>;

export interface PagerState<T> {
  items: T[];
  loading: boolean;
  done: boolean;
  error: unknown;
}

/**
 * Loads page after page, one request at a time. `reset()` starts over (new filters): an
 * answer to a request made before it is dropped, so a slow old page never lands in a new list.
 */
export class Pager<T extends { id: number }> {
  private state: PagerState<T> = { items: [], loading: false, done: false, error: null };
  private cursor: string | null = null;
  private generation = 0;

  constructor(
    private fetchPage: FetchPage<T>,
    private readonly onChange: (state: PagerState<T>) => void = () => {},
  ) {}

  get current(): PagerState<T> {
    return this.state;
  }

  reset(fetchPage?: FetchPage<T>): void {
    if (fetchPage) this.fetchPage = fetchPage;
    this.generation += 1;
    this.cursor = null;
    this.set({ items: [], loading: false, done: false, error: null });
  }

  async loadMore(): Promise<void> {
    if (this.state.loading || this.state.done) return;
    const generation = this.generation;
    this.set({ ...this.state, loading: true, error: null });
    try {
      const page = await this.fetchPage(this.cursor);
      if (generation !== this.generation) return;
      // An item already shown (moved by a change since) is not shown twice.
      const seen = new Set(this.state.items.map((item) => item.id));
      const fresh = page.items.filter((item) => !seen.has(item.id));
      this.cursor = page.next_cursor ?? null;
      this.set({
        items: [...this.state.items, ...fresh],
        loading: false,
        done: this.cursor === null,
        error: null,
      });
    } catch (error) {
      if (generation !== this.generation) return;
      this.set({ ...this.state, loading: false, error });
    }
  }

  /** Replaces an item in place (after an edit), or drops it when `keep` says so. */
  update(item: T, keep = true): void {
    const items = keep
      ? this.state.items.map((existing) => (existing.id === item.id ? item : existing))
      : this.state.items.filter((existing) => existing.id !== item.id);
    this.set({ ...this.state, items });
  }

  remove(id: number): void {
    this.set({ ...this.state, items: this.state.items.filter((item) => item.id !== id) });
  }

  append(item: T): void {
    this.set({ ...this.state, items: [...this.state.items.filter((i) => i.id !== item.id), item] });
  }

  prepend(item: T): void {
    this.set({ ...this.state, items: [item, ...this.state.items.filter((i) => i.id !== item.id)] });
  }

  private set(state: PagerState<T>): void {
    this.state = state;
    this.onChange(state);
  }
}
