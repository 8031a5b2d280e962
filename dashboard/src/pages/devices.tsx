import "../components/devices-common.css";
import type { ComponentChildren } from "preact";
import { useCallback, useEffect, useRef, useState } from "preact/hooks";
import type { PageProps } from ".";
import { api } from "../api";
import { Confirm, ErrorBox, Time, protocolName, useTick } from "../components/devices-common";
import { href } from "../router";

// ------------------------------------------------------------------ API shapes (worker/routes/api/devices.ts)

export interface Device {
  client_id: string;
  online: boolean;
  transport: "mqtt" | "http";
  connected_at: string | null;
  disconnected_at: string | null;
  last_seen_at: string | null;
  disconnect_reason: string | null;
  disconnect_code: number | null;
  will_fired: boolean;
  protocol_version: number;
  username: string | null;
  remote_address: string | null;
  connection_count: number;
  session_expires_at: string | null;
  lease_expires_at: string | null;
  decommissioned_at: string | null;
}

interface DeviceList {
  items: Device[];
  next_cursor: string | null;
}

interface Subscription {
  filter: string;
  qos: number;
  no_local: boolean;
  retain_as_published: boolean;
  retain_handling: number;
  subscription_id: number | null;
}

interface Session {
  connected: boolean;
  route: "fast" | "relay" | null;
  protocol_version: number;
  session_expiry_interval: number;
  expires_at: string | null;
  connected_at: string | null;
  keep_alive: number | null;
  username: string | null;
  will_pending: boolean;
  will_at: string | null;
  subscriptions: Subscription[];
  queued: { messages: number; bytes: number };
  in_flight: { outbound: number; outbound_bytes: number; inbound_awaiting_release: number };
}

interface DeviceDetail {
  client_id: string;
  device: Device | null;
  session: Session | null;
}

interface DisconnectResult {
  client_id: string;
  disconnected: true;
  will_published: boolean;
  session_kept: boolean;
}

interface DecommissionResult {
  client_id: string;
  dry_run: boolean;
  session_ended: boolean;
  was_online: boolean;
  subscriptions_removed: number;
  messages_dropped: number;
  will_discarded: boolean;
  retained_cleared: Record<string, number>;
  retained_skipped: { template: string; reason: string }[];
  credentials_revoked: number;
  keys_revoked: number;
  decommissioned_at: string | null;
}

const PAGE_SIZE = 50;
const REFRESH_MS = 5000;

/** `devices/<id>` path segment: the identifier percent-encoded (a `/` in it too). */
function devicePath(id: string): string {
  return `devices/${encodeURIComponent(id)}`;
}

// ------------------------------------------------------------------ #/devices

type Status = "all" | "online" | "offline";
type Transport = "all" | "mqtt" | "http";

function listQuery(status: Status, transport: Transport, prefix: string, limit: number, cursor?: string): string {
  const q = new URLSearchParams();
  if (status !== "all") q.set("status", status);
  if (transport !== "all") q.set("transport", transport);
  if (prefix !== "") q.set("prefix", prefix);
  q.set("limit", String(limit));
  if (cursor !== undefined) q.set("cursor", cursor);
  return `devices?${q}`;
}

/** The device registry: filters, prefix search, pages ("More"), auto refresh every 5 s. */
export function DevicesPage({ route }: PageProps) {
  const [status, setStatus] = useState<Status>(() => (["online", "offline"].includes(route.query.get("status") ?? "") ? (route.query.get("status") as Status) : "all"));
  const [transport, setTransport] = useState<Transport>(() => (["mqtt", "http"].includes(route.query.get("transport") ?? "") ? (route.query.get("transport") as Transport) : "all"));
  const [prefix, setPrefix] = useState(() => route.query.get("prefix") ?? "");
  const [items, setItems] = useState<Device[]>([]);
  const [next, setNext] = useState<string | null>(null);
  const [error, setError] = useState<unknown>(null);
  const [loading, setLoading] = useState(false);
  const [auto, setAuto] = useState(true);
  const [updated, setUpdated] = useState<number | null>(null);
  useTick(1000);
  // Answers to an older request (filters changed since) are dropped.
  const seq = useRef(0);
  const shown = useRef(0);
  shown.current = items.length;

  /** Reloads from the first page, as many rows as are shown (at least one page). */
  const load = useCallback(
    async (keepCount: boolean) => {
      const n = ++seq.current;
      setLoading(true);
      const limit = Math.min(1000, keepCount ? Math.max(PAGE_SIZE, shown.current) : PAGE_SIZE);
      try {
        const page = await api<DeviceList>("GET", listQuery(status, transport, prefix.trim(), limit));
        if (n !== seq.current) return;
        setItems(page.items);
        setNext(page.next_cursor);
        setError(null);
        setUpdated(Date.now());
      } catch (e) {
        if (n === seq.current) setError(e);
      } finally {
        if (n === seq.current) setLoading(false);
      }
    },
    [status, transport, prefix],
  );

  useEffect(() => {
    void load(false);
  }, [load]);

  useEffect(() => {
    if (!auto) return;
    const t = setInterval(() => void load(true), REFRESH_MS);
    return () => clearInterval(t);
  }, [auto, load]);

  const more = async () => {
    if (next === null) return;
    const n = ++seq.current;
    setLoading(true);
    try {
      const page = await api<DeviceList>("GET", listQuery(status, transport, prefix.trim(), PAGE_SIZE, next));
      if (n !== seq.current) return;
      setItems((old) => [...old, ...page.items]);
      setNext(page.next_cursor);
      setError(null);
    } catch (e) {
      if (n === seq.current) setError(e);
    } finally {
      if (n === seq.current) setLoading(false);
    }
  };

  return (
    <section class="dv" data-testid="devices-page">
      <h1>Devices</h1>
      <form class="dv-filters" onSubmit={(e) => (e.preventDefault(), void load(false))}>
        <label>
          Status
          <select value={status} onChange={(e) => setStatus((e.target as HTMLSelectElement).value as Status)} data-testid="devices-status">
            <option value="all">all</option>
            <option value="online">online</option>
            <option value="offline">offline</option>
          </select>
        </label>
        <label>
          Transport
          <select value={transport} onChange={(e) => setTransport((e.target as HTMLSelectElement).value as Transport)} data-testid="devices-transport">
            <option value="all">all</option>
            <option value="mqtt">mqtt</option>
            <option value="http">http</option>
          </select>
        </label>
        <label>
          Client identifier starts with
          <input type="search" value={prefix} placeholder="sensor-" onInput={(e) => setPrefix((e.target as HTMLInputElement).value)} data-testid="devices-prefix" />
        </label>
        <button type="submit" data-testid="devices-refresh">
          Refresh
        </button>
        <label class="dv-inline">
          <input type="checkbox" checked={auto} onChange={(e) => setAuto((e.target as HTMLInputElement).checked)} data-testid="devices-auto" />
          Auto refresh (5 s)
        </label>
        <span class="dv-muted" aria-live="polite">
          {loading ? "Loading…" : updated !== null ? `Updated ${new Date(updated).toLocaleTimeString()}` : ""}
        </span>
      </form>
      <ErrorBox error={error} />
      <table data-testid="devices-table">
        <thead>
          <tr>
            <th scope="col">Client identifier</th>
            <th scope="col">Status</th>
            <th scope="col">Transport</th>
            <th scope="col">Last seen</th>
            <th scope="col">Connected at</th>
            <th scope="col">Disconnected at</th>
            <th scope="col">Disconnect reason</th>
            <th scope="col">Will fired</th>
            <th scope="col">Protocol</th>
            <th scope="col">Username</th>
          </tr>
        </thead>
        <tbody>
          {items.map((d) => (
            <tr key={d.client_id} data-testid="device-row" data-id={d.client_id} data-online={String(d.online)}>
              <td>
                <a href={href("device", d.client_id)}>{d.client_id}</a>
                {d.decommissioned_at && <span class="dv-badge dv-badge-off"> decommissioned</span>}
              </td>
              <td data-testid="device-status">
                <span class={`dv-badge ${d.online ? "dv-badge-on" : "dv-badge-off"}`}>{d.online ? "online" : "offline"}</span>
              </td>
              <td>{d.transport}</td>
              <td>
                <Time iso={d.last_seen_at} />
              </td>
              <td>
                <Time iso={d.connected_at} />
              </td>
              <td>
                <Time iso={d.disconnected_at} />
              </td>
              <td data-testid="device-reason">
                {d.disconnect_reason ?? <span class="dv-muted">—</span>}
                {d.disconnect_code !== null && <span class="dv-muted"> (0x{d.disconnect_code.toString(16).padStart(2, "0")})</span>}
              </td>
              <td>{d.will_fired ? "yes" : "no"}</td>
              <td>{protocolName(d.protocol_version)}</td>
              <td>{d.username ?? <span class="dv-muted">—</span>}</td>
            </tr>
          ))}
          {items.length === 0 && !loading && (
            <tr>
              <td colSpan={10} class="dv-muted" data-testid="devices-empty">
                No device matches.
              </td>
            </tr>
          )}
        </tbody>
      </table>
      {next !== null && (
        <button type="button" onClick={more} disabled={loading} data-testid="devices-more">
          More
        </button>
      )}
    </section>
  );
}

// ------------------------------------------------------------------ #/device/<id>

function Field({ name, children }: { name: string; children: ComponentChildren }) {
  return (
    <>
      <dt>{name}</dt>
      <dd>{children}</dd>
    </>
  );
}

/** One device: its registry record, its live session, Disconnect and Decommission. */
export function DevicePage({ route }: PageProps) {
  const id = route.rest[0] ?? "";
  const [detail, setDetail] = useState<DeviceDetail | null>(null);
  const [error, setError] = useState<unknown>(null);
  const [loading, setLoading] = useState(false);
  // The action in progress: a confirmation on screen, its error and its answer.
  const [confirming, setConfirming] = useState<null | "disconnect" | "decommission">(null);
  const [plan, setPlan] = useState<DecommissionResult | null>(null);
  const [busy, setBusy] = useState(false);
  const [actionError, setActionError] = useState<unknown>(null);
  const [disconnected, setDisconnected] = useState<DisconnectResult | null>(null);
  const [decommissioned, setDecommissioned] = useState<DecommissionResult | null>(null);
  useTick(1000);

  const load = useCallback(async () => {
    if (id === "") return;
    setLoading(true);
    try {
      setDetail(await api<DeviceDetail>("GET", devicePath(id)));
      setError(null);
    } catch (e) {
      setDetail(null);
      setError(e);
    } finally {
      setLoading(false);
    }
  }, [id]);

  useEffect(() => {
    setConfirming(null);
    setPlan(null);
    setActionError(null);
    setDisconnected(null);
    setDecommissioned(null);
    void load();
  }, [load]);

  if (id === "") {
    return (
      <section class="dv">
        <p>
          No device named: pick one in <a href={href("devices")}>Devices</a>.
        </p>
      </section>
    );
  }

  const askDisconnect = () => {
    setActionError(null);
    setDisconnected(null);
    setDecommissioned(null);
    setConfirming("disconnect");
  };
  const doDisconnect = async () => {
    setBusy(true);
    try {
      setDisconnected(await api<DisconnectResult>("POST", `${devicePath(id)}/disconnect`));
      setActionError(null);
    } catch (e) {
      setActionError(e);
    } finally {
      setBusy(false);
      setConfirming(null);
      void load();
    }
  };

  /** Decommission asks the broker first (dry run) what it would clear, and shows that. */
  const askDecommission = async () => {
    setActionError(null);
    setDisconnected(null);
    setDecommissioned(null);
    setBusy(true);
    try {
      setPlan(await api<DecommissionResult>("DELETE", `${devicePath(id)}?dry_run=true`));
      setConfirming("decommission");
    } catch (e) {
      setActionError(e);
    } finally {
      setBusy(false);
    }
  };
  const doDecommission = async () => {
    setBusy(true);
    try {
      setDecommissioned(await api<DecommissionResult>("DELETE", devicePath(id)));
      setActionError(null);
    } catch (e) {
      setActionError(e);
    } finally {
      setBusy(false);
      setConfirming(null);
      setPlan(null);
      void load();
    }
  };

  const d = detail?.device ?? null;
  const s = detail?.session ?? null;
  return (
    <section class="dv" data-testid="device-page" data-id={id}>
      <p>
        <a href={href("devices")}>← Devices</a>
      </p>
      <h1>
        Device <code>{id}</code>{" "}
        {d && <span class={`dv-badge ${d.online ? "dv-badge-on" : "dv-badge-off"}`} data-testid="device-online">{d.online ? "online" : "offline"}</span>}
      </h1>
      <div class="dv-row">
        <button type="button" onClick={() => void load()} disabled={loading} data-testid="device-refresh">
          {loading ? "Loading…" : "Refresh"}
        </button>
        <button type="button" onClick={askDisconnect} disabled={busy || confirming !== null} data-testid="device-disconnect">
          Disconnect…
        </button>
        <button type="button" class="dv-danger" onClick={() => void askDecommission()} disabled={busy || confirming !== null} data-testid="device-decommission">
          Decommission…
        </button>
      </div>

      {confirming === "disconnect" && (
        <Confirm title={`Disconnect ${id}?`} confirmLabel="Disconnect" busy={busy} onConfirm={() => void doDisconnect()} onCancel={() => setConfirming(null)}>
          <p>
            Closes its MQTT connection now (an MQTT 5.0 client gets DISCONNECT 0x98, Administrative action). Its session stays: subscriptions and queued messages are kept,
            and its Will, if it has one, is published. The device may connect again.
          </p>
        </Confirm>
      )}
      {confirming === "decommission" && plan && (
        <Confirm title={`Decommission ${id}?`} confirmLabel="Decommission" busy={busy} onConfirm={() => void doDecommission()} onCancel={() => (setConfirming(null), setPlan(null))}>
          <DecommissionSummary r={plan} />
          <p>This cannot be undone: the device must be provisioned again to come back.</p>
        </Confirm>
      )}
      <ErrorBox error={actionError} testid="device-action-error" />
      {disconnected && (
        <p class="dv-ok" role="status" data-testid="device-disconnected">
          Disconnected. Will {disconnected.will_published ? "published" : "not published (none, or delayed)"}; session {disconnected.session_kept ? "kept" : "ended (expiry 0)"}.
        </p>
      )}
      {decommissioned && (
        <div class="dv-ok" role="status" data-testid="device-decommissioned">
          <strong>Decommissioned at {decommissioned.decommissioned_at ? new Date(decommissioned.decommissioned_at).toLocaleString() : "—"}.</strong>
          <DecommissionSummary r={decommissioned} />
        </div>
      )}

      <ErrorBox error={error} />
      {detail && (
        <div class="dv-cols">
          <div>
            <h2>Registry record</h2>
            {d ? (
              <dl class="dv-dl" data-testid="device-record">
                <Field name="Status">{d.online ? "online" : "offline"}</Field>
                <Field name="Transport">{d.transport}</Field>
                <Field name="Protocol">{protocolName(d.protocol_version)}</Field>
                <Field name="Username">{d.username ?? "—"}</Field>
                <Field name="Remote address">{d.remote_address ?? "—"}</Field>
                <Field name="Connections">{d.connection_count}</Field>
                <Field name="Last seen">
                  <Time iso={d.last_seen_at} />
                </Field>
                <Field name="Connected at">
                  <Time iso={d.connected_at} />
                </Field>
                <Field name="Disconnected at">
                  <Time iso={d.disconnected_at} />
                </Field>
                <Field name="Disconnect reason">
                  <span data-testid="device-reason">
                    {d.disconnect_reason ?? "—"}
                    {d.disconnect_code !== null && ` (0x${d.disconnect_code.toString(16).padStart(2, "0")})`}
                  </span>
                </Field>
                <Field name="Will fired">{d.will_fired ? "yes" : "no"}</Field>
                <Field name="Lease expires">
                  <Time iso={d.lease_expires_at} />
                </Field>
                <Field name="Session expires">
                  <Time iso={d.session_expires_at} />
                </Field>
                <Field name="Decommissioned">
                  <Time iso={d.decommissioned_at} />
                </Field>
              </dl>
            ) : (
              <p class="dv-muted">No registry record (the device never reached the registry).</p>
            )}
          </div>
          <div>
            <h2>Session</h2>
            {s ? (
              <>
                <dl class="dv-dl" data-testid="device-session">
                  <Field name="Connected">{s.connected ? `yes (${s.route === "fast" ? "/mqtt/<id>" : "/mqtt"})` : "no"}</Field>
                  <Field name="Connected at">
                    <Time iso={s.connected_at} />
                  </Field>
                  <Field name="Protocol">{protocolName(s.protocol_version)}</Field>
                  <Field name="Keep alive">{s.keep_alive === null ? "—" : `${s.keep_alive} s`}</Field>
                  <Field name="Session expiry">
                    {s.session_expiry_interval === 4294967295 ? "never" : `${s.session_expiry_interval} s`}
                    {s.expires_at && (
                      <>
                        {" "}
                        (ends <Time iso={s.expires_at} />)
                      </>
                    )}
                  </Field>
                  <Field name="Queued">
                    <span data-testid="device-queued">
                      {s.queued.messages} messages, {s.queued.bytes} bytes
                    </span>
                  </Field>
                  <Field name="In flight (out)">
                    {s.in_flight.outbound} messages, {s.in_flight.outbound_bytes} bytes
                  </Field>
                  <Field name="Awaiting PUBREL (in)">{s.in_flight.inbound_awaiting_release}</Field>
                  <Field name="Will">
                    {s.will_pending ? "pending" : "none"}
                    {s.will_at && (
                      <>
                        {" "}
                        (due <Time iso={s.will_at} />)
                      </>
                    )}
                  </Field>
                </dl>
                <h3>Subscriptions ({s.subscriptions.length})</h3>
                <table data-testid="device-subscriptions">
                  <thead>
                    <tr>
                      <th scope="col">Filter</th>
                      <th scope="col">QoS</th>
                      <th scope="col">No local</th>
                      <th scope="col">Retain as published</th>
                      <th scope="col">Retain handling</th>
                      <th scope="col">Subscription id</th>
                    </tr>
                  </thead>
                  <tbody>
                    {s.subscriptions.map((sub) => (
                      <tr key={sub.filter}>
                        <td>
                          <code>{sub.filter}</code>
                        </td>
                        <td>{sub.qos}</td>
                        <td>{sub.no_local ? "yes" : "no"}</td>
                        <td>{sub.retain_as_published ? "yes" : "no"}</td>
                        <td>{sub.retain_handling}</td>
                        <td>{sub.subscription_id ?? "—"}</td>
                      </tr>
                    ))}
                    {s.subscriptions.length === 0 && (
                      <tr>
                        <td colSpan={6} class="dv-muted">
                          No subscriptions.
                        </td>
                      </tr>
                    )}
                  </tbody>
                </table>
              </>
            ) : (
              <p class="dv-muted" data-testid="device-no-session">
                No session.
              </p>
            )}
          </div>
        </div>
      )}
    </section>
  );
}

/** What a decommission clears (would clear, on a dry run), item by item. */
function DecommissionSummary({ r }: { r: DecommissionResult }) {
  const would = r.dry_run ? "would be " : "";
  const filters = Object.entries(r.retained_cleared);
  return (
    <ul class="dv-list" data-testid="decommission-summary">
      <li>
        Session: {r.session_ended ? `${would}ended` : "none"}
        {r.was_online && ` (${r.dry_run ? "it is online: it would be disconnected" : "it was online: disconnected"})`}
        {r.session_ended && `; ${r.subscriptions_removed} subscriptions and ${r.messages_dropped} queued or in-flight messages ${would}dropped`}
        {r.will_discarded && `; its Will ${would}discarded`}
      </li>
      <li>
        Retained messages {would}cleared:
        {filters.length === 0 ? (
          " none (no filter)"
        ) : (
          <ul>
            {filters.map(([filter, n]) => (
              <li key={filter} data-testid="decommission-retained" data-filter={filter} data-count={n}>
                <code>{filter}</code>: {n}
              </li>
            ))}
          </ul>
        )}
        {r.retained_skipped.length > 0 && (
          <ul>
            {r.retained_skipped.map((s) => (
              <li key={s.template}>
                skipped <code>{s.template}</code>: {s.reason}
              </li>
            ))}
          </ul>
        )}
      </li>
      <li>
        Credentials {would}deleted: {r.credentials_revoked}
      </li>
      <li>
        API keys {would}revoked: {r.keys_revoked}
      </li>
      <li>The registry record {r.dry_run ? "would be" : "is"} marked decommissioned.</li>
    </ul>
  );
}
