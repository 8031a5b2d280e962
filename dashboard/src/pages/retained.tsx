import "../components/devices-common.css";
import { useCallback, useEffect, useRef, useState } from "preact/hooks";
import type { PageProps } from ".";
import { ApiError, api } from "../api";
import { Confirm, ErrorBox, Time, duration, useTick } from "../components/devices-common";
import { PayloadView } from "../components/retained-payload";

// ------------------------------------------------------------------ API shapes (worker/routes/api/retained.ts)

export interface RetainedMessage {
  topic: string;
  /** Base64. */
  payload: string;
  payload_text?: string;
  size: number;
  qos: 0 | 1 | 2;
  stored_at: string;
  expires_at: string | null;
  publisher: string | null;
  properties: {
    payload_format_indicator?: 0 | 1;
    message_expiry_interval?: number;
    content_type?: string;
    response_topic?: string;
    correlation_data?: string;
    user_properties?: { name: string; value: string }[];
  };
}

interface RetainedList {
  items: RetainedMessage[];
  next_cursor: string | null;
}

interface ClearResult {
  matched: number;
  cleared: number;
  dry_run: boolean;
}

interface SweepResult extends ClearResult {
  older_than: number;
}

const PAGE_SIZE = 100;

/**
 * `retained/<topic>`: the topic's `/` kept, each level percent-encoded. A level "." or ".."
 * cannot travel in a URL path (the browser resolves it away): such topics are addressed by
 * the filter endpoints instead (`null` here).
 */
function topicPath(topic: string): string | null {
  const levels = topic.split("/");
  if (levels.some((l) => l === "." || l === "..")) return null;
  return `retained/${levels.map(encodeURIComponent).join("/")}`;
}

/** A non-negative whole number of seconds from a text field, or undefined when empty. */
function seconds(text: string, what: string): number | undefined {
  const t = text.trim();
  if (t === "") return undefined;
  if (!/^\d+$/.test(t)) throw new ApiError(0, "Bad input", `${what}: give a whole number of seconds (0 or more), not "${t}".`);
  return Number(t);
}

/** Retained messages: filter, older-than, pages, inspect, delete one, delete by filter, stale-sweep dry run. */
export function RetainedPage({ route }: PageProps) {
  const [filterText, setFilterText] = useState(() => route.query.get("filter") ?? "#");
  const [olderText, setOlderText] = useState(() => route.query.get("older_than") ?? "");
  // The filter and age the list shows (applied on submit).
  const [applied, setApplied] = useState<{ filter: string; olderThan: number | undefined }>(() => {
    const older = route.query.get("older_than") ?? "";
    return { filter: route.query.get("filter") || "#", olderThan: /^\d+$/.test(older) ? Number(older) : undefined };
  });
  const [items, setItems] = useState<RetainedMessage[]>([]);
  const [next, setNext] = useState<string | null>(null);
  const [error, setError] = useState<unknown>(null);
  const [loading, setLoading] = useState(false);
  const [selected, setSelected] = useState<RetainedMessage | null>(null);
  const [inspectError, setInspectError] = useState<unknown>(null);
  const [confirm, setConfirm] = useState<null | { kind: "one"; topic: string } | { kind: "filter"; filter: string; olderThan: number | undefined; matched: number }>(null);
  const [busy, setBusy] = useState(false);
  const [actionError, setActionError] = useState<unknown>(null);
  const [notice, setNotice] = useState<string | null>(null);
  const [sweepText, setSweepText] = useState("");
  const [sweep, setSweep] = useState<SweepResult | null>(null);
  const [sweepError, setSweepError] = useState<unknown>(null);
  const now = useTick(1000);
  const seq = useRef(0);

  const query = (extra: Record<string, string>, a = applied) => {
    const q = new URLSearchParams({ filter: a.filter, ...extra });
    if (a.olderThan !== undefined) q.set("older_than", String(a.olderThan));
    return q.toString();
  };

  const load = useCallback(async () => {
    const n = ++seq.current;
    setLoading(true);
    try {
      const q = new URLSearchParams({ filter: applied.filter, limit: String(PAGE_SIZE) });
      if (applied.olderThan !== undefined) q.set("older_than", String(applied.olderThan));
      const page = await api<RetainedList>("GET", `retained?${q}`);
      if (n !== seq.current) return;
      setItems(page.items);
      setNext(page.next_cursor);
      setError(null);
    } catch (e) {
      if (n === seq.current) {
        setItems([]);
        setNext(null);
        setError(e);
      }
    } finally {
      if (n === seq.current) setLoading(false);
    }
  }, [applied]);

  useEffect(() => {
    void load();
  }, [load]);

  const apply = (e: Event) => {
    e.preventDefault();
    setNotice(null);
    try {
      const filter = filterText.trim();
      if (filter === "") throw new ApiError(0, "Bad input", 'Give a topic filter ("#" for every topic but the $ ones).');
      setApplied({ filter, olderThan: seconds(olderText, "Older than") });
    } catch (err) {
      setError(err);
    }
  };

  const more = async () => {
    if (next === null) return;
    const n = ++seq.current;
    setLoading(true);
    try {
      const page = await api<RetainedList>("GET", `retained?${query({ limit: String(PAGE_SIZE), cursor: next })}`);
      if (n !== seq.current) return;
      setItems((old) => [...old, ...page.items]);
      setNext(page.next_cursor);
    } catch (e) {
      if (n === seq.current) setError(e);
    } finally {
      if (n === seq.current) setLoading(false);
    }
  };

  /** Shows one message, fresh from GET /retained/<topic> (the list's copy when it cannot be addressed). */
  const inspect = async (m: RetainedMessage) => {
    setInspectError(null);
    setSelected(m);
    const path = topicPath(m.topic);
    if (path === null) return;
    try {
      setSelected(await api<RetainedMessage>("GET", path));
    } catch (e) {
      setInspectError(e);
    }
  };

  const askDeleteOne = (topic: string) => {
    setActionError(null);
    setNotice(null);
    setConfirm({ kind: "one", topic });
  };

  const askDeleteFilter = async () => {
    setActionError(null);
    setNotice(null);
    setBusy(true);
    try {
      const r = await api<ClearResult>("DELETE", `retained?${query({ dry_run: "true" })}`);
      setConfirm({ kind: "filter", filter: applied.filter, olderThan: applied.olderThan, matched: r.matched });
    } catch (e) {
      setActionError(e);
    } finally {
      setBusy(false);
    }
  };

  const doDelete = async () => {
    if (!confirm) return;
    setBusy(true);
    try {
      if (confirm.kind === "one") {
        const path = topicPath(confirm.topic);
        if (path !== null) await api("DELETE", path);
        // A topic with a "." or ".." level: the topic name is a filter matching only itself.
        else await api<ClearResult>("DELETE", `retained?${new URLSearchParams({ filter: confirm.topic })}`);
        setNotice(`Deleted the retained message on ${confirm.topic}.`);
        if (selected?.topic === confirm.topic) setSelected(null);
      } else {
        const q = new URLSearchParams({ filter: confirm.filter });
        if (confirm.olderThan !== undefined) q.set("older_than", String(confirm.olderThan));
        const r = await api<ClearResult>("DELETE", `retained?${q}`);
        setNotice(`Deleted ${r.cleared} retained message${r.cleared === 1 ? "" : "s"} matching ${confirm.filter} (${r.matched} matched).`);
        setSelected(null);
      }
      setActionError(null);
    } catch (e) {
      setActionError(e);
    } finally {
      setBusy(false);
      setConfirm(null);
      void load();
    }
  };

  const sweepDryRun = async (e: Event) => {
    e.preventDefault();
    setSweep(null);
    setSweepError(null);
    try {
      const age = seconds(sweepText, "Sweep age");
      const q = new URLSearchParams({ dry_run: "true" });
      if (age !== undefined) q.set("older_than", String(age));
      setSweep(await api<SweepResult>("POST", `retained/sweep?${q}`));
    } catch (err) {
      setSweepError(err);
    }
  };

  return (
    <section class="rt" data-testid="retained-page">
      <h1>Retained messages</h1>
      <form class="dv-filters" onSubmit={apply}>
        <label>
          Topic filter
          <input value={filterText} onInput={(e) => setFilterText((e.target as HTMLInputElement).value)} placeholder="devices/+/state" data-testid="retained-filter" />
        </label>
        <label>
          Older than (seconds)
          <input inputMode="numeric" value={olderText} onInput={(e) => setOlderText((e.target as HTMLInputElement).value)} placeholder="any age" size={10} data-testid="retained-older" />
        </label>
        <button type="submit" disabled={loading} data-testid="retained-apply">
          Show
        </button>
        <button type="button" class="dv-danger" onClick={() => void askDeleteFilter()} disabled={busy || confirm !== null} data-testid="retained-delete-filter">
          Delete matching…
        </button>
        <span class="dv-muted" aria-live="polite">
          {loading ? "Loading…" : `${items.length}${next !== null ? "+" : ""} shown for ${applied.filter}${applied.olderThan !== undefined ? `, older than ${duration(applied.olderThan)}` : ""}`}
        </span>
      </form>

      {confirm?.kind === "one" && (
        <Confirm title="Delete this retained message?" confirmLabel="Delete" busy={busy} onConfirm={() => void doDelete()} onCancel={() => setConfirm(null)}>
          <p>
            Deletes the retained message on <code>{confirm.topic}</code>: new subscribers to it will no longer receive it. Subscribers already connected are not told.
          </p>
        </Confirm>
      )}
      {confirm?.kind === "filter" && (
        <Confirm title="Delete the matching retained messages?" confirmLabel={`Delete ${confirm.matched}`} busy={busy} onConfirm={() => void doDelete()} onCancel={() => setConfirm(null)}>
          <p data-testid="retained-dry-run" data-matched={confirm.matched}>
            Dry run: <strong>{confirm.matched}</strong> retained message{confirm.matched === 1 ? "" : "s"} match <code>{confirm.filter}</code>
            {confirm.olderThan !== undefined && ` stored at least ${duration(confirm.olderThan)} ago`}. Deleting them cannot be undone
            {confirm.filter === "#" && " (# is every topic but the $ ones)"}.
          </p>
        </Confirm>
      )}
      <ErrorBox error={actionError} testid="retained-action-error" />
      {notice && (
        <p class="dv-ok" role="status" data-testid="retained-notice">
          {notice}
        </p>
      )}
      <ErrorBox error={error} />

      <table data-testid="retained-table">
        <thead>
          <tr>
            <th scope="col">Topic</th>
            <th scope="col">Size</th>
            <th scope="col">QoS</th>
            <th scope="col">Stored at</th>
            <th scope="col">Age</th>
            <th scope="col">Expires</th>
            <th scope="col">Publisher</th>
            <th scope="col">Actions</th>
          </tr>
        </thead>
        <tbody>
          {items.map((m) => (
            <tr key={m.topic} data-testid="retained-row" data-topic={m.topic} class={selected?.topic === m.topic ? "rt-selected" : ""}>
              <td>
                <code>{m.topic}</code>
              </td>
              <td>{m.size} B</td>
              <td>{m.qos}</td>
              <td>
                <Time iso={m.stored_at} />
              </td>
              <td>{duration((now - Date.parse(m.stored_at)) / 1000)}</td>
              <td>{m.expires_at ? <Time iso={m.expires_at} /> : <span class="dv-muted">never</span>}</td>
              <td>{m.publisher ?? <span class="dv-muted">HTTP ingest</span>}</td>
              <td>
                <div class="rt-actions">
                  <button type="button" onClick={() => void inspect(m)} data-testid="retained-inspect" aria-label={`Inspect ${m.topic}`}>
                    Inspect
                  </button>
                  <button type="button" class="dv-danger" onClick={() => askDeleteOne(m.topic)} disabled={busy || confirm !== null} data-testid="retained-delete" aria-label={`Delete ${m.topic}`}>
                    Delete…
                  </button>
                </div>
              </td>
            </tr>
          ))}
          {items.length === 0 && !loading && (
            <tr>
              <td colSpan={8} class="dv-muted" data-testid="retained-empty">
                No retained message matches.
              </td>
            </tr>
          )}
        </tbody>
      </table>
      {next !== null && (
        <button type="button" onClick={() => void more()} disabled={loading} data-testid="retained-more">
          More
        </button>
      )}

      {selected && (
        <section class="rt-inspect" data-testid="retained-detail" data-topic={selected.topic} aria-label="Retained message">
          <div class="dv-row">
            <h2>
              <code>{selected.topic}</code>
            </h2>
            <button type="button" onClick={() => setSelected(null)}>
              Close
            </button>
          </div>
          <ErrorBox error={inspectError} />
          <dl class="dv-dl">
            <dt>Size</dt>
            <dd>{selected.size} bytes</dd>
            <dt>QoS</dt>
            <dd>{selected.qos}</dd>
            <dt>Stored at</dt>
            <dd>
              <Time iso={selected.stored_at} />
            </dd>
            <dt>Expires</dt>
            <dd>
              {selected.expires_at ? <Time iso={selected.expires_at} /> : "never"}
              {selected.properties.message_expiry_interval !== undefined && ` (${selected.properties.message_expiry_interval} s left)`}
            </dd>
            <dt>Publisher</dt>
            <dd>{selected.publisher ?? "HTTP ingest"}</dd>
            {selected.properties.payload_format_indicator !== undefined && (
              <>
                <dt>Payload format</dt>
                <dd>{selected.properties.payload_format_indicator === 1 ? "UTF-8 text" : "bytes"}</dd>
              </>
            )}
            {selected.properties.content_type !== undefined && (
              <>
                <dt>Content type</dt>
                <dd>
                  <code>{selected.properties.content_type}</code>
                </dd>
              </>
            )}
            {selected.properties.response_topic !== undefined && (
              <>
                <dt>Response topic</dt>
                <dd>
                  <code>{selected.properties.response_topic}</code>
                </dd>
              </>
            )}
            {selected.properties.correlation_data !== undefined && (
              <>
                <dt>Correlation data</dt>
                <dd>
                  <code>{selected.properties.correlation_data}</code> (base64)
                </dd>
              </>
            )}
            {selected.properties.user_properties?.flatMap((p, i) => [
              <dt key={`n${i}`}>User property</dt>,
              <dd key={`v${i}`}>
                <code>{p.name}</code> = <code>{p.value}</code>
              </dd>,
            ])}
          </dl>
          <PayloadView message={selected} />
        </section>
      )}

      <section class="rt-sweep">
        <h2>Stale sweep (dry run)</h2>
        <p class="dv-muted">
          Counts the retained messages the stale sweep would clear: stored longer ago than the age given, or RETAINED_MAX_AGE when empty ($ topics are never swept). Nothing
          is deleted.
        </p>
        <form class="dv-filters" onSubmit={(e) => void sweepDryRun(e)}>
          <label>
            Age (seconds)
            <input inputMode="numeric" value={sweepText} onInput={(e) => setSweepText((e.target as HTMLInputElement).value)} placeholder="RETAINED_MAX_AGE" size={12} data-testid="sweep-age" />
          </label>
          <button type="submit" data-testid="sweep-dry-run">
            Dry run
          </button>
        </form>
        <ErrorBox error={sweepError} testid="sweep-error" />
        {sweep && (
          <p role="status" data-testid="sweep-result" data-matched={sweep.matched}>
            <strong>{sweep.matched}</strong> retained message{sweep.matched === 1 ? "" : "s"} stored more than {duration(sweep.older_than)} ago would be cleared (dry run, nothing
            deleted).
          </p>
        )}
      </section>
    </section>
  );
}
