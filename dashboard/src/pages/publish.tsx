import "../components/topics-style.css";
import { useState } from "preact/hooks";
import type { PageProps } from ".";
import { ApiError, api } from "../api";

/** The JSON of POST /api/v1/publish (worker/routes/api/publish.ts, PublishMessage). */
interface PublishBody {
  topic: string;
  payload: string;
  payload_encoding?: "plain" | "base64";
  qos?: 0 | 1 | 2;
  retain?: boolean;
  properties?: {
    payload_format_indicator?: 0 | 1;
    message_expiry_interval?: number;
    content_type?: string;
    response_topic?: string;
    correlation_data?: string;
    user_properties?: Record<string, string>;
  };
}

type PublishAnswer = { id: string } | { id: string; reason_code: number; message: string };

interface Outcome {
  kind: "ok" | "nomatch" | "problem";
  topic: string;
  at: number;
  text: string;
  /** The problem's own fields (type, status, errors...), shown as sent. */
  problem?: Record<string, unknown>;
}

interface UserProperty {
  key: number;
  name: string;
  value: string;
}

let nextKey = 1;

/** Checks the form; returns the request body or what is wrong with it. */
function buildBody(f: {
  topic: string;
  payload: string;
  encoding: "plain" | "base64";
  qos: 0 | 1 | 2;
  retain: boolean;
  expiry: string;
  contentType: string;
  responseTopic: string;
  correlation: string;
  utf8: boolean;
  users: UserProperty[];
}): PublishBody | string {
  if (f.topic === "") return "Type the topic to publish to.";
  if (/[+#]/.test(f.topic)) return "A topic to publish to has no wildcards: + and # are for subscriptions only.";
  let payload = f.payload;
  if (f.encoding === "base64") {
    payload = payload.replace(/\s+/g, "");
    try {
      atob(payload.replace(/-/g, "+").replace(/_/g, "/"));
    } catch {
      return "The payload is not valid base64 (or choose the text encoding).";
    }
  }
  const properties: NonNullable<PublishBody["properties"]> = {};
  if (f.expiry.trim() !== "") {
    const n = Number(f.expiry.trim());
    if (!Number.isInteger(n) || n < 0 || n > 0xffffffff) return "The message expiry is a whole number of seconds, from 0 to 4294967295.";
    properties.message_expiry_interval = n;
  }
  if (f.contentType !== "") properties.content_type = f.contentType;
  if (f.responseTopic !== "") properties.response_topic = f.responseTopic;
  if (f.correlation !== "") properties.correlation_data = f.correlation;
  if (f.utf8) properties.payload_format_indicator = 1;
  const users: Record<string, string> = {};
  for (const u of f.users) {
    if (u.name === "" && u.value === "") continue;
    if (u.name === "") return `A user property has the value "${u.value}" but no name.`;
    if (Object.hasOwn(users, u.name)) return `The user property "${u.name}" is there twice; the API takes each name once.`;
    users[u.name] = u.value;
  }
  if (Object.keys(users).length > 0) properties.user_properties = users;
  return {
    topic: f.topic,
    payload,
    ...(f.encoding === "base64" && { payload_encoding: "base64" as const }),
    qos: f.qos,
    retain: f.retain,
    ...(Object.keys(properties).length > 0 && { properties }),
  };
}

/**
 * #/publish: one message through the HTTP API (POST /api/v1/publish) with the admin token, as a
 * gateway would send it; the answer (delivered, or no matching subscribers) or the problem.
 */
export function PublishPage(_props: PageProps) {
  const [topic, setTopic] = useState("");
  const [payload, setPayload] = useState("");
  const [encoding, setEncoding] = useState<"plain" | "base64">("plain");
  const [qos, setQos] = useState<0 | 1 | 2>(0);
  const [retain, setRetain] = useState(false);
  const [expiry, setExpiry] = useState("");
  const [contentType, setContentType] = useState("");
  const [responseTopic, setResponseTopic] = useState("");
  const [correlation, setCorrelation] = useState("");
  const [utf8, setUtf8] = useState(false);
  const [users, setUsers] = useState<UserProperty[]>([]);
  const [busy, setBusy] = useState(false);
  const [invalid, setInvalid] = useState<string | undefined>();
  const [outcome, setOutcome] = useState<Outcome | undefined>();
  const [history, setHistory] = useState<Outcome[]>([]);
  const [sent, setSent] = useState<PublishBody | undefined>();

  const setUser = (key: number, change: Partial<UserProperty>) => setUsers((list) => list.map((u) => (u.key === key ? { ...u, ...change } : u)));

  const submit = async (e: Event) => {
    e.preventDefault();
    setInvalid(undefined);
    const body = buildBody({ topic, payload, encoding, qos, retain, expiry, contentType, responseTopic, correlation, utf8, users });
    if (typeof body === "string") {
      setInvalid(body);
      return;
    }
    setBusy(true);
    setSent(body);
    let result: Outcome;
    try {
      const answer = await api<PublishAnswer>("POST", "publish", body);
      if ("reason_code" in answer) {
        result = {
          kind: "nomatch",
          topic,
          at: Date.now(),
          text: `Accepted, but no subscriber matches ${topic} (reason code ${answer.reason_code}, ${answer.message})${retain ? "; kept as the topic's retained message" : ""}. Message id ${answer.id}.`,
        };
      } else {
        result = {
          kind: "ok",
          topic,
          at: Date.now(),
          text: `Published to ${topic}: accepted by every matching subscriber's session${qos > 0 ? " (as a PUBACK would mean)" : ""}${retain ? ", and retained" : ""}. Message id ${answer.id}.`,
        };
      }
    } catch (err) {
      const p = err instanceof ApiError ? err : new ApiError(0, "Error", err instanceof Error ? err.message : String(err));
      result = {
        kind: "problem",
        topic,
        at: Date.now(),
        text: `${p.status ? `${p.status} ` : ""}${p.title}${p.detail ? `: ${p.detail}` : ""}`,
        problem: p.problem,
      };
    } finally {
      setBusy(false);
    }
    setOutcome(result);
    setHistory((h) => [result, ...h].slice(0, 10));
  };

  return (
    <div class="publish">
      <h2>Publish</h2>
      <p class="hint">
        Sends one message through the HTTP API (<code>POST /api/v1/publish</code>) with the admin token: it takes the path of an MQTT PUBLISH, to every
        matching subscriber. <code>$</code> topics are refused.
      </p>
      <form class="publish-form" onSubmit={submit} aria-label="message">
        <div class="publish-row">
          <label>
            Topic
            <input data-testid="publish-topic" value={topic} required spellcheck={false} placeholder="devices/gw-1/temperature" onInput={(e) => setTopic(e.currentTarget.value)} />
          </label>
        </div>
        <label>
          Payload
          <textarea data-testid="publish-payload" value={payload} spellcheck={false} onInput={(e) => setPayload(e.currentTarget.value)} />
        </label>
        <div class="publish-row">
          <label>
            Payload encoding
            <select data-testid="publish-encoding" value={encoding} onChange={(e) => setEncoding(e.currentTarget.value as "plain" | "base64")}>
              <option value="plain">text (UTF-8)</option>
              <option value="base64">base64 (binary)</option>
            </select>
          </label>
          <label>
            QoS
            <select data-testid="publish-qos" value={String(qos)} onChange={(e) => setQos(Number(e.currentTarget.value) as 0 | 1 | 2)}>
              <option value="0">0: at most once</option>
              <option value="1">1: at least once</option>
              <option value="2">2: exactly once</option>
            </select>
          </label>
          <label class="publish-check">
            <input type="checkbox" data-testid="publish-retain" checked={retain} onChange={(e) => setRetain(e.currentTarget.checked)} />
            retain
          </label>
        </div>
        <fieldset>
          <legend>MQTT 5 properties (optional)</legend>
          <div class="publish-row">
            <label>
              Message expiry (seconds)
              <input data-testid="publish-expiry" inputMode="numeric" value={expiry} onInput={(e) => setExpiry(e.currentTarget.value)} />
            </label>
            <label>
              Content type
              <input data-testid="publish-content-type" value={contentType} placeholder="application/json" onInput={(e) => setContentType(e.currentTarget.value)} />
            </label>
          </div>
          <div class="publish-row">
            <label>
              Response topic
              <input data-testid="publish-response-topic" value={responseTopic} spellcheck={false} onInput={(e) => setResponseTopic(e.currentTarget.value)} />
            </label>
            <label>
              Correlation data (text)
              <input data-testid="publish-correlation" value={correlation} onInput={(e) => setCorrelation(e.currentTarget.value)} />
            </label>
          </div>
          <label class="publish-check">
            <input type="checkbox" data-testid="publish-utf8" checked={utf8} onChange={(e) => setUtf8(e.currentTarget.checked)} />
            the payload is UTF-8 text (payload format indicator 1, checked by the broker)
          </label>
          {users.map((u, i) => (
            <div class="publish-user-row" key={u.key} data-testid="publish-user-property">
              <label>
                User property {i + 1} name
                <input data-testid="publish-user-name" value={u.name} onInput={(e) => setUser(u.key, { name: e.currentTarget.value })} />
              </label>
              <label>
                value
                <input data-testid="publish-user-value" value={u.value} onInput={(e) => setUser(u.key, { value: e.currentTarget.value })} />
              </label>
              <button type="button" aria-label={`Remove user property ${i + 1}`} onClick={() => setUsers((list) => list.filter((x) => x.key !== u.key))}>
                Remove
              </button>
            </div>
          ))}
          <div>
            <button type="button" data-testid="publish-add-user-property" onClick={() => setUsers((list) => [...list, { key: nextKey++, name: "", value: "" }])}>
              Add user property
            </button>
          </div>
        </fieldset>
        <div>
          <button type="submit" data-testid="publish-submit" disabled={busy}>
            {busy ? "Publishing…" : "Publish"}
          </button>
        </div>
        {invalid && (
          <p class="error" role="alert" data-testid="publish-invalid">
            {invalid}
          </p>
        )}
      </form>
      {outcome && (
        <div
          class={`publish-result ${outcome.kind === "ok" ? "publish-ok" : outcome.kind === "nomatch" ? "publish-nomatch" : "error"}`}
          role={outcome.kind === "problem" ? "alert" : "status"}
          data-testid="publish-result"
          data-kind={outcome.kind}
        >
          <strong>{outcome.kind === "ok" ? "Published" : outcome.kind === "nomatch" ? "No matching subscribers" : "Refused"}</strong>
          <p>{outcome.text}</p>
          {outcome.problem && Object.keys(outcome.problem).length > 0 && <pre>{JSON.stringify(outcome.problem, null, 2)}</pre>}
          {sent && (
            <details>
              <summary>Request body sent</summary>
              <pre data-testid="publish-sent">{JSON.stringify(sent, null, 2)}</pre>
            </details>
          )}
        </div>
      )}
      {history.length > 1 && (
        <table class="publish-history" data-testid="publish-history">
          <caption class="hint">This tab's last {history.length} publishes</caption>
          <thead>
            <tr>
              <th scope="col">Time</th>
              <th scope="col">Topic</th>
              <th scope="col">Outcome</th>
            </tr>
          </thead>
          <tbody>
            {history.map((h, i) => (
              <tr key={i}>
                <td>{new Date(h.at).toLocaleTimeString()}</td>
                <td>
                  <code>{h.topic}</code>
                </td>
                <td class={h.kind === "problem" ? "error" : ""}>{h.kind === "ok" ? "published" : h.kind === "nomatch" ? "no matching subscribers" : h.text}</td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
    </div>
  );
}
