import { useState } from "preact/hooks";
import { setToken, tokenWorks } from "../api";

/**
 * Asks for the admin token, checks it against the API, and only then keeps it in this tab's
 * sessionStorage: a refused token is shown as refused and stored nowhere.
 */
export function LoginPage({ onLogin, reason }: { onLogin: () => void; reason?: string | null }) {
  const [value, setValue] = useState("");
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);
  const submit = async (e: Event) => {
    e.preventDefault();
    const candidate = value.trim();
    if (candidate === "") return;
    setBusy(true);
    setError(null);
    const verdict = await tokenWorks(candidate);
    setBusy(false);
    if (verdict === true) {
      setToken(candidate);
      onLogin();
    } else if (verdict === false) {
      setError("The broker refused this token (401): it is not the broker's admin token.");
    } else {
      setError(verdict.message);
    }
  };
  return (
    <form class="login" onSubmit={submit} data-testid="login">
      <h1>edge-mqtt</h1>
      {reason && !error && (
        <p class="notice" role="status" data-testid="login-reason">
          {reason}
        </p>
      )}
      <label>
        Admin token
        <input
          type="password"
          name="token"
          autocomplete="current-password"
          value={value}
          onInput={(e) => setValue((e.target as HTMLInputElement).value)}
          required
          data-testid="login-token"
        />
      </label>
      <p class="hint">
        Locally: <code>grep ADMIN_TOKEN .dev.vars</code>. Kept in this tab only (sessionStorage), never in a URL or cookie.
      </p>
      {error && (
        <p class="error" role="alert" data-testid="login-error">
          {error}
        </p>
      )}
      <button type="submit" disabled={busy || value.trim() === ""} data-testid="login-submit">
        {busy ? "Checking…" : "Log in"}
      </button>
    </form>
  );
}
