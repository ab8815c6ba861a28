// A value that components can watch (no library needed for a handful of them).
import { useEffect, useState } from 'preact/hooks';

type Listener = () => void;

export class Store<T> {
  private listeners = new Set<Listener>();
  constructor(private value: T) {}
  get(): T {
    return this.value;
  }
  set(value: T): void {
    this.value = value;
    for (const listener of this.listeners) listener();
  }
  use(): T {
    const [, setTick] = useState(0);
    useEffect(() => {
      const listener = () => setTick((tick) => tick + 1);
      this.listeners.add(listener);
      listener(); // a change made before this effect ran
      return () => this.listeners.delete(listener);
    }, []);
    return this.value;
  }
}
