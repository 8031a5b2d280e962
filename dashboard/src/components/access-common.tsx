/**
 * Pieces shared by the access pages (API keys, users, ACL): loading a list, showing an API
 * refusal (its problem title and detail), and a destructive action's confirmation.
 */
import "./access-common.css";
import type { ComponentChildren } from "preact";
import { useCallback, useEffect, useState } from "preact/hooks";
import { ApiError } from "../api";

/** Any thrown value as an ApiError (its title and detail are what the user sees). */
export function asApiError(e: unknown): ApiError {
  if (e instanceof ApiError) return e;
  return new ApiError(0, "Error", e instanceof Error ? e.message : String(e));
}

/** Loads `fetcher()` now and on `reload()`; the last error is kept until the next success. */
export function useLoad<T>(fetcher: () => Promise<T>): { data: T | undefined; error: ApiError | null; loading: boolean; reload: () => void } {
  const [data, setData] = useState<T | undefined>(undefined);
  const [error, setError] = useState<ApiError | null>(null);
  const [loading, setLoading] = useState(true);
  const [tick, setTick] = useState(0);
  useEffect(() => {
    let live = true;
    setLoading(true);
    fetcher().then(
      (d) => {
        if (!live) return;
        setData(d);
        setError(null);
        setLoading(false);
      },
      (e: unknown) => {
        if (!live) return;
        setError(asApiError(e));
        setLoading(false);
      },
    );
    return () => {
      live = false;
    };
  }, [tick]);
  const reload = useCallback(() => setTick((t) => t + 1), []);
  return { data, error, loading, reload };
}

/** An API refusal as the user sees it: the problem's title, its detail, and per-field errors. */
export function ProblemBox({ error, testid }: { error: ApiError | null; testid: string }) {
  if (!error) return null;
  const listed = Array.isArray(error.problem.errors) ? (error.problem.errors as Array<{ path?: unknown; message?: unknown }>) : [];
  // Per-field errors the detail does not already say.
  const fields = listed.filter((f) => !error.detail.includes(String(f.message ?? "")));
  return (
    <div class="access-problem error" role="alert" data-testid={testid}>
      <strong>
        {error.title}
        {error.status ? ` (${error.status})` : ""}
      </strong>
      {error.detail && <span>: {error.detail}</span>}
      {fields.length > 0 && (
        <ul>
          {fields.map((f, i) => (
            <li key={i}>
              {f.path ? <code>{String(f.path)}</code> : null} {String(f.message ?? "")}
            </li>
          ))}
        </ul>
      )}
    </div>
  );
}

/**
 * A destructive action: the first click asks, saying what will happen; only "Yes" runs it.
 * A refusal of the API is shown next to it.
 */
export function ConfirmAction({
  label,
  confirmLabel,
  question,
  onConfirm,
  testid,
}: {
  label: string;
  confirmLabel: string;
  question: ComponentChildren;
  onConfirm: () => Promise<void>;
  testid: string;
}) {
  const [asking, setAsking] = useState(false);
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<ApiError | null>(null);
  if (!asking)
    return (
      <span>
        <button type="button" class="access-danger" onClick={() => (setAsking(true), setError(null))} data-testid={testid}>
          {label}
        </button>
        <ProblemBox error={error} testid={`${testid}-error`} />
      </span>
    );
  return (
    <div class="access-confirm" role="alertdialog" aria-label={label} data-testid={`${testid}-confirm`}>
      <p>{question}</p>
      <button
        type="button"
        class="access-danger"
        disabled={busy}
        data-testid={`${testid}-yes`}
        onClick={async () => {
          setBusy(true);
          try {
            await onConfirm();
            setAsking(false);
            setError(null);
          } catch (e) {
            setError(asApiError(e));
            setAsking(false);
          } finally {
            setBusy(false);
          }
        }}
      >
        {busy ? "Working…" : confirmLabel}
      </button>{" "}
      <button type="button" disabled={busy} onClick={() => setAsking(false)} data-testid={`${testid}-cancel`}>
        Cancel
      </button>
    </div>
  );
}

/** A date-time of the API (ISO) as local time, or a dash. */
export function when(iso: string | null | undefined): string {
  if (!iso) return "—";
  const d = new Date(iso);
  return Number.isNaN(d.getTime()) ? iso : d.toLocaleString();
}

/** A labelled form field. */
export function Field({ label, hint, children }: { label: string; hint?: string; children: ComponentChildren }) {
  return (
    <label class="access-field">
      <span>{label}</span>
      {children}
      {hint && <small class="hint">{hint}</small>}
    </label>
  );
}
