import type { ComponentChildren, InputHTMLAttributes, PartialInputHTMLAttributes } from 'preact';
import { useEffect, useRef } from 'preact/hooks';
import { type ErrorMessages, describeError } from '../api/errors';

/** An error message read out by screen readers, with an optional action (Retry, Reload). */
export function ErrorMessage(props: {
  error: unknown;
  action?: { label: string; run: () => void };
  messages?: ErrorMessages;
}) {
  if (!props.error) return null;
  return (
    <div class="alert alert-error" role="alert">
      <span>{describeError(props.error, props.messages)}</span>
      {props.action && (
        <button type="button" class="button-secondary" onClick={props.action.run}>
          {props.action.label}
        </button>
      )}
    </div>
  );
}

type InputProps = Omit<PartialInputHTMLAttributes<HTMLInputElement>, 'value' | 'onInput' | 'label' | 'class' | 'role'>;

/** A labelled text input (the label wraps it, so it names the input). */
export function TextField(
  props: InputProps & { label: ComponentChildren; value: string; onValue: (value: string) => void; class?: string },
) {
  const { label, value, onValue, class: className, ...input } = props;
  return (
    <label class={className}>
      {label}
      {/* Preact types an input's attributes per `type`; these are checked above. */}
      <input
        {...(input as InputHTMLAttributes<HTMLInputElement>)}
        value={value}
        onInput={(e) => onValue(e.currentTarget.value)}
      />
    </label>
  );
}

/** A form's submit button, disabled with a "…ing" label while its request runs. */
export function SubmitButton(props: { busy: boolean; label: string; busyLabel: string }) {
  return (
    <button type="submit" disabled={props.busy}>
      {props.busy ? props.busyLabel : props.label}
    </button>
  );
}

export function Notice(props: { children: ComponentChildren }) {
  return (
    <div class="alert alert-info" role="status">
      {props.children}
    </div>
  );
}

/** The screen's title; focused when the screen opens, so screen readers announce it. */
export function ScreenTitle(props: { children: ComponentChildren }) {
  const ref = useRef<HTMLHeadingElement>(null);
  useEffect(() => {
    ref.current?.focus();
  }, []);
  return (
    <h1 ref={ref} tabIndex={-1}>
      {props.children}
    </h1>
  );
}

/** Loads more when it scrolls into view (infinite scroll); a button for keyboards. */
export function LoadMore(props: {
  loading: boolean;
  done: boolean;
  onMore: () => void;
  label: string;
}) {
  const ref = useRef<HTMLDivElement>(null);
  const { loading, done, onMore } = props;
  useEffect(() => {
    const element = ref.current;
    if (!element || done || typeof IntersectionObserver === 'undefined') return;
    const observer = new IntersectionObserver(
      (entries) => {
        if (entries.some((entry) => entry.isIntersecting)) onMore();
      },
      { rootMargin: '400px' },
    );
    observer.observe(element);
    return () => observer.disconnect();
  }, [done, onMore]);
  return (
    <div ref={ref} class="load-more" aria-live="polite">
      {loading && <p class="muted">Loading…</p>}
      {!loading && !done && (
        <button type="button" class="button-secondary" onClick={onMore}>
          {props.label}
        </button>
      )}
    </div>
  );
}

export function formatDate(iso: string | null | undefined): string {
  if (!iso) return '';
  return new Date(iso).toLocaleString(undefined, { dateStyle: 'medium', timeStyle: 'short' });
}

/** A datetime-local input's value (local time) from an RFC 3339 timestamp, and back. */
export function toLocalInput(iso: string | null | undefined): string {
  if (!iso) return '';
  const date = new Date(iso);
  const local = new Date(date.getTime() - date.getTimezoneOffset() * 60_000);
  return local.toISOString().slice(0, 16);
}

export function fromLocalInput(value: string): string | null {
  return value ? new Date(value).toISOString() : null;
}

export function parseTags(value: string): string[] {
  const tags = value
    .split(',')
    .map((tag) => tag.trim().toLowerCase())
    .filter(Boolean);
  return [...new Set(tags)];
}

export function TagList(props: { tags: string[] }) {
  return (
    <>
      {props.tags.map((tag) => (
        <span class="tag" key={tag}>
          #{tag}
        </span>
      ))}
    </>
  );
}
