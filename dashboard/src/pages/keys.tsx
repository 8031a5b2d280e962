import { useState } from "preact/hooks";
import type { PageProps } from ".";
import { api, type ApiError } from "../api";
import { asApiError, ConfirmAction, Field, ProblemBox, useLoad, when } from "../components/access-common";

interface ApiKey {
  id: string;
  name: string;
  scopes: string[];
  device: string | null;
  created_at: string | null;
  last_used_at: string | null;
  revoked_at: string | null;
}

interface CreatedKey extends ApiKey {
  key: string;
}

/**
 * #/keys: the HTTP API keys (publish over HTTP within their scopes). Create one (its secret is
 * shown this once, with a copy button), list them, revoke one after a confirmation.
 */
export function KeysPage(_props: PageProps) {
  const list = useLoad(() => api<{ keys: ApiKey[] }>("GET", "keys"));
  const [created, setCreated] = useState<CreatedKey | null>(null);
  const keys = list.data?.keys ?? [];
  return (
    <section>
      <h1>API keys</h1>
      <p class="hint">
        Keys publish over HTTP (<code>POST /api/v1/publish</code>) to topics within their scopes, as user name <code>key:&lt;id&gt;</code> for the ACL
        rules. Only a hash is stored: the key itself is shown once, when it is created.
      </p>
      {created && <NewKeySecret created={created} onDone={() => setCreated(null)} />}
      <CreateKeyForm
        onCreated={(k) => {
          setCreated(k);
          list.reload();
        }}
      />
      <ProblemBox error={list.error} testid="keys-load-error" />
      {list.loading && !list.data && <p class="hint">Loading…</p>}
      {list.data && keys.length === 0 && (
        <p class="hint" data-testid="keys-empty">
          No API keys yet.
        </p>
      )}
      {keys.length > 0 && (
        <table data-testid="keys-table">
          <thead>
            <tr>
              <th scope="col">Name</th>
              <th scope="col">Id</th>
              <th scope="col">Scopes</th>
              <th scope="col">Device</th>
              <th scope="col">Created</th>
              <th scope="col">Last used</th>
              <th scope="col">Status</th>
              <th scope="col">
                <span class="access-muted">Actions</span>
              </th>
            </tr>
          </thead>
          <tbody>
            {keys.map((k) => (
              <tr key={k.id} class={k.revoked_at ? "access-revoked" : ""} data-testid={`key-row-${k.id}`} data-name={k.name}>
                <td>{k.name}</td>
                <td>
                  <code>{k.id}</code>
                </td>
                <td>
                  {k.scopes.map((s) => (
                    <code key={s} style={{ display: "block" }}>
                      {s}
                    </code>
                  ))}
                </td>
                <td>{k.device ?? <span class="access-muted">—</span>}</td>
                <td>{when(k.created_at)}</td>
                <td>{when(k.last_used_at)}</td>
                <td data-testid={`key-status-${k.id}`}>{k.revoked_at ? `revoked ${when(k.revoked_at)}` : "active"}</td>
                <td>
                  {!k.revoked_at && (
                    <ConfirmAction
                      label="Revoke"
                      confirmLabel="Yes, revoke"
                      testid={`key-revoke-${k.id}`}
                      question={
                        <>
                          Revoke the key <strong>{k.name}</strong> (<code>{k.id}</code>)? Every request made with it is refused (401) from now on; this cannot be
                          undone (create a new key instead).
                        </>
                      }
                      onConfirm={async () => {
                        await api("DELETE", `keys/${encodeURIComponent(k.id)}`);
                        list.reload();
                      }}
                    />
                  )}
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
    </section>
  );
}

function NewKeySecret({ created, onDone }: { created: CreatedKey; onDone: () => void }) {
  const [copied, setCopied] = useState<string | null>(null);
  const copy = async () => {
    try {
      await navigator.clipboard.writeText(created.key);
      setCopied("Copied to the clipboard.");
    } catch (e) {
      setCopied(`Could not copy (${e instanceof Error ? e.message : String(e)}): select the key and copy it by hand.`);
    }
  };
  return (
    <div class="access-secret" role="status" data-testid="key-secret">
      <strong>Key “{created.name}” created.</strong> Copy it now: it is shown only this once and cannot be shown again (only its hash is stored).
      <code data-testid="key-secret-value">{created.key}</code>
      <button type="button" onClick={copy} data-testid="key-secret-copy">
        Copy key
      </button>{" "}
      <button type="button" onClick={onDone} data-testid="key-secret-done">
        I have copied it
      </button>
      {copied && (
        <span class="hint" data-testid="key-secret-copied">
          {" "}
          {copied}
        </span>
      )}
    </div>
  );
}

function CreateKeyForm({ onCreated }: { onCreated: (k: CreatedKey) => void }) {
  const [name, setName] = useState("");
  const [scopes, setScopes] = useState("");
  const [device, setDevice] = useState("");
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<ApiError | null>(null);
  const submit = async (e: Event) => {
    e.preventDefault();
    const list = scopes
      .split(/[\n,]/)
      .map((s) => s.trim())
      .filter((s) => s !== "");
    setBusy(true);
    setError(null);
    try {
      const k = await api<CreatedKey>("POST", "keys", { name: name.trim(), scopes: list, ...(device.trim() !== "" && { device: device.trim() }) });
      setName("");
      setScopes("");
      setDevice("");
      onCreated(k);
    } catch (err) {
      setError(asApiError(err));
    } finally {
      setBusy(false);
    }
  };
  return (
    <form class="access-form" onSubmit={submit} data-testid="key-form" aria-label="Create an API key">
      <Field label="Name">
        <input value={name} required maxLength={200} onInput={(e) => setName((e.target as HTMLInputElement).value)} data-testid="key-name" />
      </Field>
      <Field label="Scopes (topic filters, one a line or comma-separated)">
        <textarea rows={2} cols={32} required value={scopes} onInput={(e) => setScopes((e.target as HTMLTextAreaElement).value)} data-testid="key-scopes" placeholder="devices/gw-1/#" />
      </Field>
      <Field label="Device (optional)" hint="Issued to this device: revoked when it is decommissioned.">
        <input value={device} onInput={(e) => setDevice((e.target as HTMLInputElement).value)} data-testid="key-device" />
      </Field>
      <button type="submit" disabled={busy} data-testid="key-create">
        {busy ? "Creating…" : "Create key"}
      </button>
      <div style={{ flexBasis: "100%" }}>
        <ProblemBox error={error} testid="key-create-error" />
      </div>
    </form>
  );
}
