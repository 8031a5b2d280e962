import { cloudflareTest, readD1Migrations } from "@cloudflare/vitest-plugin";
import { fileURLToPath } from "node:url";
import { defineConfig } from "vitest/config";
import { buildAssets } from "./scripts/build-assets.mjs";

// wrangler.toml [assets] must exist: wrangler builds it itself ([build]), the test pool does not.
buildAssets();

// Miniflare must not fetch Request.cf from workers.cloudflare.com.
process.env.CLOUDFLARE_CF_FETCH_ENABLED = "false";

// Worker + Durable Objects + D1 inside workerd, configured from wrangler.toml.
export default defineConfig({
  plugins: [
    cloudflareTest(async () => ({
      wrangler: { configPath: "./wrangler.toml" },
      miniflare: {
        // Read once here (Node side); applied in test/workers/setup.ts.
        bindings: {
          ADMIN_TOKEN: "test-admin-token-0123456789",
          // As `npm start` runs it locally (.dev.vars); tests of refusals turn it off per test.
          ALLOW_ANONYMOUS: "true",
          // Plain /mqtt through a ConnectionDO: the suites that look inside it (mqtt-over-websocket,
          // partial-packets, auth-connect) test that path; the Worker relay is tested with its own
          // env (worker-relay.test.ts) and end to end (test/e2e/worker-relay.test.ts).
          MQTT_RELAY: "object",
          // Long enough for a test client's PUBACK to arrive first (the default, 6 ms, is the
          // e2e suites' and the bench's): tests see both a message never written and a stored one.
          QOS1_STORE_DELAY_MS: "250",
          TEST_MIGRATIONS: await readD1Migrations(fileURLToPath(new URL("./migrations", import.meta.url))),
        },
        // No network from tests: every outbound fetch() from the Worker is
        // answered here with 503, never sent.
        outboundService: (request: Request) =>
          new Response(`outbound network disabled in tests: ${request.method} ${request.url}`, {
            status: 503,
            headers: { "X-Outbound-Refused": "1" },
          }),
      },
    })),
  ],
  test: {
    include: ["test/workers/**/*.test.ts"],
    setupFiles: ["./test/workers/setup.ts"],
  },
});
