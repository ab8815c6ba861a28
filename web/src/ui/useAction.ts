import { useCallback, useRef, useState } from 'preact/hooks';
import { IdempotentAction } from '../api/idempotency';

/**
 * A request started by a person (a form, a button): `busy` while it runs, its error kept
 * for the screen to show. `run` resolves to whether it succeeded.
 */
export function useAction() {
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<unknown>(null);
  const run = useCallback(async (work: () => Promise<unknown>): Promise<boolean> => {
    setBusy(true);
    setError(null);
    try {
      await work();
      return true;
    } catch (caught) {
      setError(caught);
      return false;
    } finally {
      setBusy(false);
    }
  }, []);
  return { busy, error, setError, run };
}

/** A form's submit handler running `work` as an action (the page does not reload). */
export function useSubmit(work: () => Promise<unknown>) {
  const action = useAction();
  const submit = (event: Event) => {
    event.preventDefault();
    void action.run(work);
  };
  return { ...action, submit };
}

/** The Idempotency-Key keeper of one form: its creating write, retried, is done once. */
export function useIdempotent(): IdempotentAction {
  const action = useRef<IdempotentAction | null>(null);
  if (action.current === null) action.current = new IdempotentAction();
  return action.current;
}
