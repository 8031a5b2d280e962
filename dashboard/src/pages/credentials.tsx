import { useEffect, useState } from "preact/hooks";
import type { PageProps } from ".";
import { api, type ApiError } from "../api";
import { asApiError, ConfirmAction, Field, ProblemBox, when } from "../components/access-common";

interface Credential {
  username: string;
  admin: boolean;
  algorithm: string;
  created_at: string;
}

interface CredentialList {
  items: Credential[];
  next_cursor: string | null;
}

/** Every page of users (the API pages them; an admin wants them all here). */
async function loadAll(): Promise<Credential[]> {
  const out: Credential[] = [];
  let cursor: string | null = null;
  for (let i = 0; i < 50; i++) {
    const page: CredentialList = await api<CredentialList>("GET", `credentials?limit=1000${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ""}`);
    out.push(...page.items);
    cursor = page.next_cursor;
    if (!cursor) break;
  }
  return out;
}

/**
 * #/credentials: the MQTT users (user name and password; admins read $SYS). Create one,
 * replace a password, delete one after a confirmation. Passwords are never shown: only
 * their hash is stored.
 */
export function CredentialsPage(_props: PageProps) {
  const [users, setUsers] = useState<Credential[] | null>(null);
  const [error, setError] = useState<ApiError | null>(null);
  const [notice, setNotice] = useState<string | null>(null);
  const [tick, setTick] = useState(0);
  const reload = () => setTick((t) => t + 1);
  useEffect(() => {
    let live = true;
    loadAll().then(
      (u) => live && (setUsers(u), setError(null)),
      (e: unknown) => live && setError(asApiError(e)),
    );
    return () => {
      live = false;
    };
  }, [tick]);
  return (
    <section>
      <h1>Users</h1>
      <p class="hint">
        User names and passwords for MQTT CONNECT. Only a salted PBKDF2 hash of each password is stored; a changed or deleted user is refused within
        AUTH_CACHE_SECONDS, connections already open stay. Admin users may read <code>$SYS/#</code>.
      </p>
      <UserForm
        known={(users ?? []).map((u) => u.username)}
        onSaved={(u) => {
          setNotice(`User “${u.username}” created${u.admin ? " (admin)" : ""}.`);
          reload();
        }}
      />
      {notice && (
        <p class="notice" role="status" data-testid="user-notice">
          {notice}
        </p>
      )}
      <ProblemBox error={error} testid="users-load-error" />
      {users === null && !error && <p class="hint">Loading…</p>}
      {users !== null && users.length === 0 && (
        <p class="hint" data-testid="users-empty">
          No users yet.
        </p>
      )}
      {users !== null && users.length > 0 && (
        <table data-testid="users-table">
          <thead>
            <tr>
              <th scope="col">User name</th>
              <th scope="col">Admin</th>
              <th scope="col">Hash</th>
              <th scope="col">Created</th>
              <th scope="col">
                <span class="access-muted">Actions</span>
              </th>
            </tr>
          </thead>
          <tbody>
            {users.map((u) => (
              <tr key={u.username} data-testid={`user-row-${u.username}`}>
                <td>
                  <code>{u.username}</code>
                </td>
                <td>{u.admin ? "admin" : "—"}</td>
                <td>
                  <code>{u.algorithm}</code>
                </td>
                <td>{when(u.created_at)}</td>
                <td>
                  <ReplacePassword user={u} onDone={(msg) => (setNotice(msg), reload())} />{" "}
                  <ConfirmAction
                    label="Delete"
                    confirmLabel="Yes, delete"
                    testid={`user-delete-${u.username}`}
                    question={
                      <>
                        Delete the user <strong>{u.username}</strong>? New connections with this user name are refused (within AUTH_CACHE_SECONDS); connections
                        already open stay until they reconnect. ACL rules naming the user are kept.
                      </>
                    }
                    onConfirm={async () => {
                      await api("DELETE", `credentials/${encodeURIComponent(u.username)}`);
                      setNotice(`User “${u.username}” deleted.`);
                      reload();
                    }}
                  />
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
    </section>
  );
}

function UserForm({ known, onSaved }: { known: string[]; onSaved: (u: Credential) => void }) {
  const [username, setUsername] = useState("");
  const [password, setPassword] = useState("");
  const [admin, setAdmin] = useState(false);
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<ApiError | null>(null);
  const submit = async (e: Event) => {
    e.preventDefault();
    setBusy(true);
    setError(null);
    try {
      // POST creates (201) or replaces an existing user's password (200): refuse the latter here.
      if (known.includes(username)) {
        setError(asApiError(new Error(`The user “${username}” already exists: use “Replace password” in its row.`)));
        return;
      }
      const u = await api<Credential>("POST", "credentials", { username, password, admin });
      setUsername("");
      setPassword("");
      setAdmin(false);
      onSaved(u);
    } catch (err) {
      setError(asApiError(err));
    } finally {
      setBusy(false);
    }
  };
  return (
    <form class="access-form" onSubmit={submit} data-testid="user-form" aria-label="Create a user">
      <Field label="User name" hint="No + # / (it stands for %u in ACL rules).">
        <input value={username} required autocomplete="off" onInput={(e) => setUsername((e.target as HTMLInputElement).value)} data-testid="user-name" />
      </Field>
      <Field label="Password">
        <input type="password" value={password} required autocomplete="new-password" onInput={(e) => setPassword((e.target as HTMLInputElement).value)} data-testid="user-password" />
      </Field>
      <label class="access-field access-check">
        <input type="checkbox" checked={admin} onChange={(e) => setAdmin((e.target as HTMLInputElement).checked)} data-testid="user-admin" />
        <span>Admin (may read $SYS)</span>
      </label>
      <button type="submit" disabled={busy} data-testid="user-create">
        {busy ? "Saving…" : "Create user"}
      </button>
      <div style={{ flexBasis: "100%" }}>
        <ProblemBox error={error} testid="user-create-error" />
      </div>
    </form>
  );
}

function ReplacePassword({ user, onDone }: { user: Credential; onDone: (message: string) => void }) {
  const [open, setOpen] = useState(false);
  const [password, setPassword] = useState("");
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<ApiError | null>(null);
  if (!open)
    return (
      <button type="button" onClick={() => setOpen(true)} data-testid={`user-replace-${user.username}`}>
        Replace password
      </button>
    );
  const submit = async (e: Event) => {
    e.preventDefault();
    setBusy(true);
    setError(null);
    try {
      await api<Credential>("POST", "credentials", { username: user.username, password });
      setOpen(false);
      setPassword("");
      onDone(`Password of “${user.username}” replaced (the old one stops working within AUTH_CACHE_SECONDS; open connections stay).`);
    } catch (err) {
      setError(asApiError(err));
    } finally {
      setBusy(false);
    }
  };
  return (
    <form onSubmit={submit} style={{ display: "inline-block" }} data-testid={`user-replace-form-${user.username}`}>
      <Field label={`New password for ${user.username}`}>
        <input type="password" required autocomplete="new-password" value={password} onInput={(e) => setPassword((e.target as HTMLInputElement).value)} data-testid={`user-replace-password-${user.username}`} />
      </Field>
      <button type="submit" disabled={busy} data-testid={`user-replace-save-${user.username}`}>
        {busy ? "Saving…" : "Save"}
      </button>{" "}
      <button type="button" onClick={() => setOpen(false)}>
        Cancel
      </button>
      <ProblemBox error={error} testid={`user-replace-error-${user.username}`} />
    </form>
  );
}
