import "./app.css";
import { render } from "preact";
import { useEffect, useState } from "preact/hooks";
import { logout, token, type LogoutDetail } from "./api";
import { LoginPage } from "./pages/login";
import { PAGES } from "./pages";
import { href, useRoute } from "./router";

/** The shell: the login gate, the navigation, and the page the hash names. */
function App() {
  const [loggedIn, setLoggedIn] = useState(() => token() !== null);
  const [reason, setReason] = useState<string | null>(null);
  const route = useRoute();
  useEffect(() => {
    const out = (e: Event) => {
      setReason((e as CustomEvent<LogoutDetail>).detail?.reason ?? null);
      setLoggedIn(false);
    };
    window.addEventListener("edge-mqtt:logout", out);
    return () => window.removeEventListener("edge-mqtt:logout", out);
  }, []);
  if (!loggedIn)
    return (
      <LoginPage
        reason={reason}
        onLogin={() => {
          setReason(null);
          setLoggedIn(true);
        }}
      />
    );
  const page = PAGES.find((p) => p.name === route.page) ?? PAGES[0]!;
  const Page = page.component;
  return (
    <div class="shell">
      <nav class="nav" aria-label="sections" data-testid="nav">
        <strong class="brand">edge-mqtt</strong>
        {PAGES.filter((p) => p.nav).map((p) => (
          <a
            key={p.name}
            href={href(p.name)}
            class={p === page || (p.name === "devices" && page.name === "device") ? "active" : ""}
            aria-current={p === page ? "page" : undefined}
            data-page={p.name}
            data-testid={`nav-${p.name}`}
          >
            {p.title}
          </a>
        ))}
        <button type="button" class="logout" onClick={() => logout()} data-testid="logout">
          Log out
        </button>
      </nav>
      <main class="page" data-page={page.name} data-testid={`page-${page.name}`}>
        {/* key: a page's state starts afresh when the page changes. */}
        <Page key={page.name} route={route} />
      </main>
    </div>
  );
}

render(<App />, document.getElementById("app")!);
