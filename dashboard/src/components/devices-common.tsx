import type { ComponentChildren } from "preact";
import { useEffect, useRef, useState } from "preact/hooks";
import { ApiError } from "../api";

/**
 * Small pieces shared by the devices and retained pages: times (absolute and relative), the
 * API's refusals shown as they came (title and detail), and an inline confirmation panel that
 * says what an action will do before it is done.
 */

/** "12 s ago", "in 3 min", from an ISO time; "—" when unknown. */
export function relative(iso: string | null | undefined, now = Date.now()): string {
  if (!iso) return "—";
  const ms = Date.parse(iso);
  if (Number.isNaN(ms)) return iso;
  const d = Math.round((ms - now) / 1000);
  const a = Math.abs(d);
  const span = a < 60 ? `${a} s` : a < 3600 ? `${Math.floor(a / 60)} min` : a < 86_400 ? `${Math.floor(a / 3600)} h` : `${Math.floor(a / 86_400)} d`;
  return d <= 0 ? `${span} ago` : `in ${span}`;
}

/** An age in seconds, human: "42 s", "5 min", "3 h", "2 d". */
export function duration(seconds: number): string {
  const a = Math.max(0, Math.round(seconds));
  if (a < 60) return `${a} s`;
  if (a < 3600) return `${Math.floor(a / 60)} min ${a % 60} s`;
  if (a < 86_400) return `${Math.floor(a / 3600)} h ${Math.floor((a % 3600) / 60)} min`;
  return `${Math.floor(a / 86_400)} d ${Math.floor((a % 86_400) / 3600)} h`;
}

/** A time cell: local date and time, the relative time beside it, the ISO value as title. */
export function Time({ iso }: { iso: string | null | undefined }) {
  if (!iso) return <span class="dv-muted">—</span>;
  const d = new Date(iso);
  return (
    <time dateTime={iso} title={iso}>
      {d.toLocaleString()} <span class="dv-muted">({relative(iso)})</span>
    </time>
  );
}

/** Re-renders every `ms` (for relative times and ages). */
export function useTick(ms = 1000): number {
  const [now, setNow] = useState(Date.now());
  useEffect(() => {
    const t = setInterval(() => setNow(Date.now()), ms);
    return () => clearInterval(t);
  }, [ms]);
  return now;
}

/** The error of a failed call, as the API explained it. */
export function ErrorBox({ error, testid = "error" }: { error: unknown; testid?: string }) {
  if (error === null || error === undefined) return null;
  const e = error instanceof ApiError ? error : new ApiError(0, "Error", error instanceof Error ? error.message : String(error));
  return (
    <div class="dv-error" role="alert" data-testid={testid}>
      <strong>{e.title}</strong>
      {e.status > 0 && <span class="dv-muted"> (HTTP {e.status})</span>}
      {e.detail && <div>{e.detail}</div>}
    </div>
  );
}

/**
 * A confirmation that says what will happen: `children` describe it; the action runs only on
 * the confirm button. Shown inline (role alertdialog) so it can list details and be tested.
 */
export function Confirm(props: {
  title: string;
  confirmLabel: string;
  onConfirm: () => void;
  onCancel: () => void;
  busy?: boolean;
  children: ComponentChildren;
  testid?: string;
}) {
  // Keyboard users land on the safe choice; Escape cancels.
  const cancel = useRef<HTMLButtonElement>(null);
  useEffect(() => cancel.current?.focus(), []);
  return (
    <div
      class="dv-confirm"
      role="alertdialog"
      aria-label={props.title}
      data-testid={props.testid ?? "confirm"}
      onKeyDown={(e) => e.key === "Escape" && !props.busy && props.onCancel()}
    >
      <strong>{props.title}</strong>
      <div class="dv-confirm-body">{props.children}</div>
      <div class="dv-row">
        <button type="button" class="dv-danger" onClick={props.onConfirm} disabled={props.busy} data-testid="confirm-yes">
          {props.busy ? "Working…" : props.confirmLabel}
        </button>
        <button type="button" ref={cancel} onClick={props.onCancel} disabled={props.busy} data-testid="confirm-no">
          Cancel
        </button>
      </div>
    </div>
  );
}

/** `3` → "3.1", `4` → "3.1.1", `5` → "5.0". */
export function protocolName(v: number | null | undefined): string {
  return v === 3 ? "3.1" : v === 4 ? "3.1.1" : v === 5 ? "5.0" : v === null || v === undefined ? "—" : String(v);
}
