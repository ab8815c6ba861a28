// Read your own writes: a list fetched while a change is on its way would not show it (and
// the change's answer would find nothing to update). Lists wait for the pending writes.

const pending = new Set<Promise<unknown>>();

/** Runs a write; lists fetched meanwhile wait until it has settled. */
export function write<T>(request: Promise<T>): Promise<T> {
  pending.add(request);
  const forget = () => pending.delete(request);
  request.then(forget, forget);
  return request;
}

export async function writesSettled(): Promise<void> {
  while (pending.size > 0) await Promise.allSettled([...pending]);
}
