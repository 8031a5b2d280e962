import { h, type ComponentType } from "preact";
import { useEffect, useState } from "preact/hooks";
import type { Route } from "../router";
import { AclPage } from "./acl";
import { CredentialsPage } from "./credentials";
import { DevicePage, DevicesPage } from "./devices";
import { KeysPage } from "./keys";
import { OverviewPage } from "./overview";
import { PublishPage } from "./publish";
import { RetainedPage } from "./retained";

export interface PageProps {
  route: Route;
}

export interface PageEntry {
  /** The first part of the hash: `#/<name>/...`. */
  name: string;
  title: string;
  /** Listed in the navigation. */
  nav: boolean;
  component: ComponentType<PageProps>;
}

/**
 * A page whose code is fetched when it is first shown: esbuild splits it (and what only it
 * imports) into a chunk. The topic tree is one: it alone needs MQTT.js, most of the bundle.
 */
function lazyPage(title: string, load: () => Promise<ComponentType<PageProps>>): ComponentType<PageProps> {
  let loaded: ComponentType<PageProps> | undefined;
  let loading: Promise<ComponentType<PageProps>> | undefined;
  return function LazyPage(props: PageProps) {
    const [, setReady] = useState(false);
    const [error, setError] = useState<string | null>(null);
    useEffect(() => {
      if (loaded) return;
      let live = true;
      (loading ??= load()).then(
        (component) => {
          loaded = component;
          if (live) setReady(true);
        },
        (e: unknown) => {
          loading = undefined;
          if (live) setError(e instanceof Error ? e.message : String(e));
        },
      );
      return () => {
        live = false;
      };
    }, []);
    if (loaded) return h(loaded, props);
    if (error) return h("p", { class: "error", role: "alert" }, `Could not load the ${title} page: ${error}`);
    return h("p", { class: "hint" }, "Loading…");
  };
}

const TopicsPage = lazyPage("Topics", () => import("./topics").then((m) => m.TopicsPage));

/** Every page; the first is the default. */
export const PAGES: PageEntry[] = [
  { name: "overview", title: "Overview", nav: true, component: OverviewPage },
  { name: "devices", title: "Devices", nav: true, component: DevicesPage },
  { name: "device", title: "Device", nav: false, component: DevicePage },
  { name: "topics", title: "Topics", nav: true, component: TopicsPage },
  { name: "retained", title: "Retained", nav: true, component: RetainedPage },
  { name: "publish", title: "Publish", nav: true, component: PublishPage },
  { name: "keys", title: "API keys", nav: true, component: KeysPage },
  { name: "credentials", title: "Users", nav: true, component: CredentialsPage },
  { name: "acl", title: "ACL", nav: true, component: AclPage },
];
