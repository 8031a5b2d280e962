import "../components/topics-style.css";
import { useEffect, useRef, useState } from "preact/hooks";
import type { PageProps } from ".";
import { DEFAULT_LIMITS, TopicStore, sortedChildren, type TopicNode } from "../components/topics-model";
import { TopicDetail, TopicRow, type TreeView } from "../components/topics-tree";
import { MqttSession, brokerUrl, filterProblem, parseFilters, type MqttCredentials, type MqttState, type SubscribeResult } from "../mqtt";

/** Only when the user ticks "remember for this tab": this tab's sessionStorage, never elsewhere. */
const CREDENTIALS_KEY = "edge-mqtt-topics-credentials";

function savedCredentials(): MqttCredentials | undefined {
  try {
    const raw = sessionStorage.getItem(CREDENTIALS_KEY);
    if (raw === null) return undefined;
    const v = JSON.parse(raw) as Partial<MqttCredentials>;
    return { username: String(v.username ?? ""), password: String(v.password ?? "") };
  } catch {
    return undefined;
  }
}

const STATE_LABEL: Record<MqttState, string> = {
  idle: "not connected",
  connecting: "connecting…",
  connected: "connected",
  reconnecting: "reconnecting…",
  closed: "disconnected",
  refused: "refused",
};

/** How often the tree is redrawn while messages stream in (each message is stored at once). */
const REDRAW_MS = 200;

/**
 * #/topics: the live topic tree. The browser itself subscribes over MQTT 5 on this broker's
 * /mqtt WebSocket, with a credential typed here (or anonymously when the broker allows it).
 */
export function TopicsPage(_props: PageProps) {
  const store = useRef(new TopicStore()).current;
  const session = useRef<MqttSession | undefined>(undefined);
  const saved = useRef(savedCredentials()).current;
  const [username, setUsername] = useState(saved?.username ?? "");
  const [password, setPassword] = useState(saved?.password ?? "");
  const [remember, setRemember] = useState(saved !== undefined);
  const [filterText, setFilterText] = useState("#");
  const [state, setState] = useState<MqttState>("idle");
  const [detail, setDetail] = useState<string | undefined>();
  const [error, setError] = useState<string | undefined>();
  const [subs, setSubs] = useState<SubscribeResult[]>([]);
  const [, setVersion] = useState(0);
  const [now, setNow] = useState(() => Date.now());
  const [open, setOpen] = useState<Map<string, boolean>>(() => new Map());
  const [openDefault, setOpenDefault] = useState<"shallow" | "all" | "none">("shallow");
  const [selected, setSelected] = useState<string | undefined>();
  const redraw = useRef<ReturnType<typeof setTimeout> | undefined>(undefined);

  useEffect(() => {
    const tick = setInterval(() => setNow(Date.now()), 1000);
    return () => {
      clearInterval(tick);
      clearTimeout(redraw.current);
      const s = session.current;
      session.current = undefined;
      s?.end();
    };
  }, []);

  const scheduleRedraw = () => {
    if (redraw.current !== undefined) return;
    redraw.current = setTimeout(() => {
      redraw.current = undefined;
      setVersion((v) => v + 1);
      setNow(Date.now());
    }, REDRAW_MS);
  };

  const checkedFilters = (): string[] | undefined => {
    const filters = parseFilters(filterText);
    if (filters.length === 0) {
      setError("Type at least one topic filter, e.g. # (and $SYS/# for an admin).");
      return undefined;
    }
    const problems = filters.map(filterProblem).filter((p) => p !== undefined);
    if (problems.length > 0) {
      setError(`Not a valid topic filter: ${problems.join("; ")}.`);
      return undefined;
    }
    return filters;
  };

  const subscribe = async (s: MqttSession, filters: string[]) => {
    try {
      const results = await s.subscribe(filters);
      if (session.current !== s) return;
      setSubs(results);
      const refused = results.filter((r) => !r.ok);
      if (refused.length > 0) setError(`The broker refused ${refused.map((r) => `${r.filter}: ${r.reason}`).join("; ")}.`);
    } catch (e) {
      if (session.current === s) setError(`Subscribing failed: ${e instanceof Error ? e.message : String(e)}`);
    }
  };

  const connect = (e: Event) => {
    e.preventDefault();
    setError(undefined);
    const filters = checkedFilters();
    if (!filters) return;
    if (remember) sessionStorage.setItem(CREDENTIALS_KEY, JSON.stringify({ username, password }));
    else sessionStorage.removeItem(CREDENTIALS_KEY);
    session.current?.end();
    setSubs([]);
    let subscribed = false;
    const s: MqttSession = new MqttSession(username === "" && password === "" ? undefined : { username, password }, {
      onState(next, why) {
        if (session.current !== s) return;
        setState(next);
        setDetail(why);
        if (next === "refused") setError(why);
        if (next === "connected" && !subscribed) {
          // Later reconnections resubscribe by themselves (MQTT.js `resubscribe`).
          subscribed = true;
          void subscribe(s, filters);
        }
      },
      onMessage(m) {
        if (session.current !== s) return;
        store.add(m);
        scheduleRedraw();
      },
    });
    session.current = s;
    setState("connecting");
    setDetail(undefined);
  };

  const apply = () => {
    setError(undefined);
    const filters = checkedFilters();
    const s = session.current;
    if (!filters || !s) return;
    void subscribe(s, filters);
  };

  const disconnect = () => {
    const s = session.current;
    session.current = undefined;
    s?.end();
    setState("closed");
    setDetail(undefined);
    setSubs([]);
  };

  const clear = () => {
    store.clear();
    setSelected(undefined);
    setVersion((v) => v + 1);
  };

  const view: TreeView = {
    now,
    selected,
    isOpen: (n: TopicNode) => open.get(n.path) ?? (openDefault === "all" ? true : openDefault === "none" ? false : n.depth < 2),
    toggle: (n: TopicNode) => setOpen((m) => new Map(m).set(n.path, !view.isOpen(n))),
    select: (n: TopicNode) => setSelected(n.path),
  };
  const expandAll = (how: "all" | "none") => {
    setOpen(new Map());
    setOpenDefault(how);
  };

  const live = state === "connecting" || state === "connected" || state === "reconnecting";
  const selectedNode = selected === undefined ? undefined : store.find(selected);
  const roots = sortedChildren(store.root);

  return (
    <div class="topics">
      <h2>Topics</h2>
      <form class="topics-connect" onSubmit={connect} aria-label="connection">
        <label>
          User name
          <input data-testid="topics-username" value={username} autocomplete="username" onInput={(e) => setUsername(e.currentTarget.value)} disabled={live} />
        </label>
        <label>
          Password
          <input
            data-testid="topics-password"
            type="password"
            value={password}
            autocomplete="current-password"
            onInput={(e) => setPassword(e.currentTarget.value)}
            disabled={live}
          />
        </label>
        <label class="topics-check">
          <input
            type="checkbox"
            data-testid="topics-remember"
            checked={remember}
            disabled={live}
            onChange={(e) => {
              setRemember(e.currentTarget.checked);
              if (!e.currentTarget.checked) sessionStorage.removeItem(CREDENTIALS_KEY);
            }}
          />
          remember for this tab
        </label>
        <label class="topics-filter">
          Topic filters (comma separated)
          <input data-testid="topics-filter" value={filterText} onInput={(e) => setFilterText(e.currentTarget.value)} spellcheck={false} />
        </label>
        <div class="topics-buttons">
          {live ? (
            <>
              <button type="button" data-testid="topics-apply" onClick={apply} disabled={state !== "connected"}>
                Apply filters
              </button>
              <button type="button" data-testid="topics-disconnect" onClick={disconnect}>
                Disconnect
              </button>
            </>
          ) : (
            <button type="submit" data-testid="topics-connect">
              Connect
            </button>
          )}
          <button type="button" data-testid="topics-clear" onClick={clear}>
            Clear tree
          </button>
        </div>
      </form>
      <p class="hint">
        The browser connects to <code>{brokerUrl()}</code> with MQTT 5. Leave the user name empty to connect anonymously (when the broker allows it); an
        admin credential may subscribe to <code>$SYS/#</code> (<code>#</code> never matches <code>$</code> topics). The credential stays in this tab, and
        in its session storage only if you tick "remember".
      </p>
      <p class="topics-status" role="status">
        <span class={`topics-state topics-state-${state}`} data-testid="topics-state" data-state={state}>
          {STATE_LABEL[state]}
        </span>
        {detail && state !== "refused" && <span class="hint"> {detail}</span>}
        {subs.length > 0 && (
          <span class="hint" data-testid="topics-subscriptions">
            {" "}
            subscribed: {subs.map((r) => `${r.filter} (${r.reason})`).join(", ")}
          </span>
        )}
      </p>
      {error && (
        <p class="error" role="alert" data-testid="topics-error">
          {error}
        </p>
      )}
      <p class="topics-summary" data-testid="topics-summary">
        {store.topicCount} topic{store.topicCount === 1 ? "" : "s"}, {store.received} message{store.received === 1 ? "" : "s"} received.{" "}
        <button type="button" class="topics-link" onClick={() => expandAll("all")}>
          Expand all
        </button>{" "}
        <button type="button" class="topics-link" onClick={() => expandAll("none")}>
          Collapse all
        </button>
      </p>
      {store.capped && (
        <p class="topics-capped" role="status" data-testid="topics-capped">
          Topic limit reached: the tree keeps the first {DEFAULT_LIMITS.maxTopics.toLocaleString("en")} topics; {store.dropped} message
          {store.dropped === 1 ? "" : "s"} on newer topics were not kept. Narrow the filter, or clear the tree.
        </p>
      )}
      <div class="topics-body">
        <div class="topics-treebox">
          {roots.length === 0 ? (
            <p class="hint" data-testid="topics-empty">
              {state === "connected" ? "Subscribed; no message yet." : "Connect to see the topics."}
            </p>
          ) : (
            <ul class="topics-tree" aria-label="topic tree" data-testid="topics-tree">
              {roots.map((n) => (
                <TopicRow key={n.name} node={n} view={view} />
              ))}
            </ul>
          )}
          <p class="hint">
            Keeps up to {DEFAULT_LIMITS.maxTopics.toLocaleString("en")} topics, the last {DEFAULT_LIMITS.maxValues} numeric values per topic and the first{" "}
            {DEFAULT_LIMITS.maxPayloadBytes / 1024} KiB of each last payload.
          </p>
        </div>
        {selectedNode ? (
          <TopicDetail node={selectedNode} now={now} />
        ) : (
          <p class="hint topics-detail">Select a topic to see its last message and MQTT 5 properties.</p>
        )}
      </div>
    </div>
  );
}
