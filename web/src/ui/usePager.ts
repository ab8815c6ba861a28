import { useCallback, useEffect, useRef, useState } from 'preact/hooks';
import { type FetchPage, Pager, type PagerState } from '../api/paging';

/** A Pager for a screen: starts over when `key` changes (new filters), loads the first page. */
export function usePager<T extends { id: number }>(fetchPage: FetchPage<T>, key: string) {
  const [state, setState] = useState<PagerState<T>>({
    items: [],
    loading: true,
    done: false,
    error: null,
  });
  const pager = useRef<Pager<T> | null>(null);
  if (pager.current === null) pager.current = new Pager(fetchPage, setState);
  const fetchRef = useRef(fetchPage);
  fetchRef.current = fetchPage;

  useEffect(() => {
    pager.current?.reset((cursor) => fetchRef.current(cursor));
    void pager.current?.loadMore();
  }, [key]);

  const loadMore = useCallback(() => void pager.current?.loadMore(), []);
  return { ...state, pager: pager.current, loadMore };
}
