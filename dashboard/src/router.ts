import { useEffect, useState } from "preact/hooks";

/** The page's place: `#/<page>/<rest...>?<query>`, e.g. `#/devices/sensor-17`. */
export interface Route {
  page: string;
  rest: string[];
  query: URLSearchParams;
}

export function parseHash(hash: string): Route {
  const raw = hash.replace(/^#\/?/, "");
  const [path = "", search = ""] = raw.split("?", 2);
  const [page = "", ...rest] = path.split("/").map((p) => decodeURIComponent(p));
  return { page: page || "overview", rest, query: new URLSearchParams(search) };
}

/** A link's href to a page: `href("devices", id)`. */
export function href(page: string, ...rest: string[]): string {
  return `#/${[page, ...rest].map((p) => encodeURIComponent(p)).join("/")}`;
}

export function navigate(page: string, ...rest: string[]): void {
  location.hash = href(page, ...rest);
}

export function useRoute(): Route {
  const [route, setRoute] = useState(() => parseHash(location.hash));
  useEffect(() => {
    const on = () => setRoute(parseHash(location.hash));
    window.addEventListener("hashchange", on);
    return () => window.removeEventListener("hashchange", on);
  }, []);
  return route;
}
