import type { Env } from "./env";

// Types `env` / `exports` from "cloudflare:workers" and the default `Env` of
// `DurableObject<Env>` for this Worker.
declare global {
  namespace Cloudflare {
    interface Env extends WorkerEnvBindings {}
    interface GlobalProps {
      mainModule: typeof import("./index");
      durableNamespaces: "SessionDO" | "ConnectionDO" | "TopicShardDO";
    }
  }
}
type WorkerEnvBindings = Env;
