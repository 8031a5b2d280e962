import { useEffect, useState } from "preact/hooks";
import type { PageProps } from ".";
import { api, type ApiError } from "../api";
import { asApiError, ConfirmAction, Field, ProblemBox, when } from "../components/access-common";

type Action = "publish" | "subscribe" | "all";

interface AclRule {
  id: number;
  username: string | null;
  clientid: string | null;
  topic: string;
  action: Action;
  allow: boolean;
  created_at?: string | null;
}

interface AclRuleList {
  items: AclRule[];
  next_cursor: string | null;
}

interface CheckResult {
  allowed: boolean;
  reason: string;
  rule: AclRule | null;
  allow_anonymous: boolean;
  admin: boolean;
}

async function loadAll(): Promise<AclRule[]> {
  const out: AclRule[] = [];
  let cursor: string | null = null;
  for (let i = 0; i < 50; i++) {
    const page: AclRuleList = await api<AclRuleList>("GET", `acl?limit=1000${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ""}`);
    out.push(...page.items);
    cursor = page.next_cursor;
    if (!cursor) break;
  }
  return out;
}

/** A rule in one line, as the user wrote it. */
function describeRule(r: AclRule): string {
  const who = r.username === null && r.clientid === null ? "everyone" : [r.username !== null && `user ${r.username}`, r.clientid !== null && `client ${r.clientid}`].filter(Boolean).join(", ");
  return `#${r.id}: ${r.allow ? "allow" : "deny"} ${r.action} ${r.topic} for ${who}`;
}

/**
 * #/acl: the ACL rules (Mosquitto-like: any matching deny wins, then any allow, else the
 * ALLOW_ANONYMOUS default), a form to add one, delete with a confirmation, and "test a
 * topic": the broker's own decision for a client, with the rule that decided it.
 */
export function AclPage(_props: PageProps) {
  const [rules, setRules] = useState<AclRule[] | null>(null);
  const [error, setError] = useState<ApiError | null>(null);
  const [tick, setTick] = useState(0);
  const reload = () => setTick((t) => t + 1);
  useEffect(() => {
    let live = true;
    loadAll().then(
      (r) => live && (setRules(r), setError(null)),
      (e: unknown) => live && setError(asApiError(e)),
    );
    return () => {
      live = false;
    };
  }, [tick]);
  return (
    <section>
      <h1>ACL</h1>
      <p class="hint">
        A rule applies to a client when its user name and client identifier are empty or equal the client's; <code>%c</code> / <code>%u</code> in the
        topic stand for the client identifier / user name. Among the applicable rules matching a topic any deny wins, then any allow; where none
        matches, ALLOW_ANONYMOUS decides. Nobody publishes to <code>$</code> topics; only admins read <code>$SYS/#</code>. Live sessions see a change
        within ACL_CACHE_SECONDS.
      </p>
      <div class="access-section">
        <h2>Test a topic</h2>
        <CheckForm />
      </div>
      <div class="access-section">
        <h2>Rules</h2>
        <RuleForm onAdded={reload} />
        <ProblemBox error={error} testid="acl-load-error" />
        {rules === null && !error && <p class="hint">Loading…</p>}
        {rules !== null && rules.length === 0 && (
          <p class="hint" data-testid="acl-empty">
            No rules: every check is decided by ALLOW_ANONYMOUS.
          </p>
        )}
        {rules !== null && rules.length > 0 && (
          <table data-testid="acl-table">
            <thead>
              <tr>
                <th scope="col">Id</th>
                <th scope="col">Effect</th>
                <th scope="col">Action</th>
                <th scope="col">Topic</th>
                <th scope="col">User name</th>
                <th scope="col">Client id</th>
                <th scope="col">Created</th>
                <th scope="col">
                  <span class="access-muted">Actions</span>
                </th>
              </tr>
            </thead>
            <tbody>
              {rules.map((r) => (
                <tr key={r.id} data-testid={`acl-row-${r.id}`} data-topic={r.topic}>
                  <td>{r.id}</td>
                  <td class={r.allow ? "access-allowed" : "access-denied"}>{r.allow ? "allow" : "deny"}</td>
                  <td>{r.action}</td>
                  <td>
                    <code>{r.topic}</code>
                  </td>
                  <td>{r.username ?? <span class="access-muted">any</span>}</td>
                  <td>{r.clientid ?? <span class="access-muted">any</span>}</td>
                  <td>{when(r.created_at)}</td>
                  <td>
                    <ConfirmAction
                      label="Delete"
                      confirmLabel="Yes, delete"
                      testid={`acl-delete-${r.id}`}
                      question={
                        <>
                          Delete rule <code>{describeRule(r)}</code>? Checks it decided fall to the other rules or to the default; live sessions see it within
                          ACL_CACHE_SECONDS.
                        </>
                      }
                      onConfirm={async () => {
                        await api("DELETE", `acl/${r.id}`);
                        reload();
                      }}
                    />
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        )}
      </div>
    </section>
  );
}

function RuleForm({ onAdded }: { onAdded: () => void }) {
  const [username, setUsername] = useState("");
  const [clientid, setClientid] = useState("");
  const [topic, setTopic] = useState("");
  const [action, setAction] = useState<Action>("all");
  const [allow, setAllow] = useState(true);
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<ApiError | null>(null);
  const [notice, setNotice] = useState<string | null>(null);
  const submit = async (e: Event) => {
    e.preventDefault();
    setBusy(true);
    setError(null);
    setNotice(null);
    try {
      const rule = await api<AclRule>("POST", "acl", {
        ...(username !== "" && { username }),
        ...(clientid !== "" && { clientid }),
        topic,
        action,
        allow,
      });
      setTopic("");
      setNotice(`Rule added: ${describeRule(rule)}.`);
      onAdded();
    } catch (err) {
      setError(asApiError(err));
    } finally {
      setBusy(false);
    }
  };
  return (
    <form class="access-form" onSubmit={submit} data-testid="acl-form" aria-label="Add an ACL rule">
      <Field label="Effect">
        <select value={allow ? "allow" : "deny"} onChange={(e) => setAllow((e.target as HTMLSelectElement).value === "allow")} data-testid="acl-effect">
          <option value="allow">allow</option>
          <option value="deny">deny</option>
        </select>
      </Field>
      <Field label="Action">
        <select value={action} onChange={(e) => setAction((e.target as HTMLSelectElement).value as Action)} data-testid="acl-action">
          <option value="all">all (publish and subscribe)</option>
          <option value="publish">publish</option>
          <option value="subscribe">subscribe (and delivery)</option>
        </select>
      </Field>
      <Field label="Topic filter" hint="+ and # allowed; %c client id, %u user name.">
        <input value={topic} required onInput={(e) => setTopic((e.target as HTMLInputElement).value)} data-testid="acl-topic" placeholder="devices/%c/#" />
      </Field>
      <Field label="User name (optional)">
        <input value={username} onInput={(e) => setUsername((e.target as HTMLInputElement).value)} data-testid="acl-username" placeholder="any" />
      </Field>
      <Field label="Client id (optional)">
        <input value={clientid} onInput={(e) => setClientid((e.target as HTMLInputElement).value)} data-testid="acl-clientid" placeholder="any" />
      </Field>
      <button type="submit" disabled={busy} data-testid="acl-add">
        {busy ? "Adding…" : "Add rule"}
      </button>
      <div style={{ flexBasis: "100%" }}>
        <ProblemBox error={error} testid="acl-add-error" />
        {notice && (
          <p class="hint" role="status" data-testid="acl-add-notice">
            {notice}
          </p>
        )}
      </div>
    </form>
  );
}

const REASONS: Record<string, string> = {
  rule: "decided by the rule below",
  default: "no rule matched: the default (ALLOW_ANONYMOUS)",
  "dollar-topic": "nobody publishes to $ topics (they are the broker's)",
  "sys-admin-only": "$SYS is read by admin users only",
  "sys-admin": "$SYS: allowed to an admin user",
  claims: "decided by a token's acl claim",
};

function CheckForm() {
  const [username, setUsername] = useState("");
  const [clientid, setClientid] = useState("");
  const [topic, setTopic] = useState("");
  const [action, setAction] = useState<"publish" | "subscribe" | "read">("publish");
  const [admin, setAdmin] = useState<"stored" | "yes" | "no">("stored");
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<ApiError | null>(null);
  const [result, setResult] = useState<{ query: string; check: CheckResult } | null>(null);
  const submit = async (e: Event) => {
    e.preventDefault();
    setBusy(true);
    setError(null);
    setResult(null);
    try {
      const check = await api<CheckResult>("POST", "acl/check", {
        ...(username !== "" && { username }),
        clientid,
        topic,
        action,
        ...(admin !== "stored" && { admin: admin === "yes" }),
      });
      const who = `${username !== "" ? `user ${username}, ` : "anonymous, "}client ${clientid}${check.admin ? " (admin)" : ""}`;
      setResult({ query: `${action} ${topic} as ${who}`, check });
    } catch (err) {
      setError(asApiError(err));
    } finally {
      setBusy(false);
    }
  };
  return (
    <>
      <form class="access-form" onSubmit={submit} data-testid="acl-check-form" aria-label="Test a topic against the rules">
        <Field label="Action">
          <select value={action} onChange={(e) => setAction((e.target as HTMLSelectElement).value as typeof action)} data-testid="acl-check-action">
            <option value="publish">publish (topic name)</option>
            <option value="subscribe">subscribe (topic filter)</option>
            <option value="read">read: delivery (topic name)</option>
          </select>
        </Field>
        <Field label="Topic">
          <input value={topic} required onInput={(e) => setTopic((e.target as HTMLInputElement).value)} data-testid="acl-check-topic" placeholder="devices/sensor-17/temp" />
        </Field>
        <Field label="Client id">
          <input value={clientid} required onInput={(e) => setClientid((e.target as HTMLInputElement).value)} data-testid="acl-check-clientid" />
        </Field>
        <Field label="User name (empty: anonymous)">
          <input value={username} onInput={(e) => setUsername((e.target as HTMLInputElement).value)} data-testid="acl-check-username" />
        </Field>
        <Field label="Admin">
          <select value={admin} onChange={(e) => setAdmin((e.target as HTMLSelectElement).value as typeof admin)} data-testid="acl-check-admin">
            <option value="stored">as stored for the user</option>
            <option value="yes">yes</option>
            <option value="no">no</option>
          </select>
        </Field>
        <button type="submit" disabled={busy} data-testid="acl-check-submit">
          {busy ? "Checking…" : "Test"}
        </button>
      </form>
      <ProblemBox error={error} testid="acl-check-error" />
      {result && (
        <div class="access-verdict" role="status" data-testid="acl-check-result" data-allowed={String(result.check.allowed)} data-reason={result.check.reason}>
          <span class={result.check.allowed ? "access-allowed" : "access-denied"} data-testid="acl-check-verdict">
            {result.check.allowed ? "Allowed" : "Denied"}
          </span>{" "}
          <span class="hint">
            ({result.query}): {REASONS[result.check.reason] ?? result.check.reason}
            {result.check.reason === "default" && ` — ALLOW_ANONYMOUS is ${result.check.allow_anonymous ? "on: allowed" : "off: denied"}`}.
          </span>
          {result.check.rule && (
            <p data-testid="acl-check-rule" data-rule-id={String(result.check.rule.id)}>
              Deciding rule: <code>{describeRule(result.check.rule)}</code>
            </p>
          )}
        </div>
      )}
    </>
  );
}
