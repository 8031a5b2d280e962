import { defineConfig } from "vitest/config";

// Browser tests of the dashboard, in Node: a real broker started as `npm start` starts it
// (test/e2e/broker.ts) and Debian's Chromium driven by playwright-core (test/browser/harness.ts).
// One file at a time: each starts a broker and a browser.
export default defineConfig({
  test: {
    include: ["test/browser/**/*.test.ts"],
    environment: "node",
    testTimeout: 120_000,
    hookTimeout: 180_000,
    teardownTimeout: 30_000,
    fileParallelism: false,
    maxWorkers: 1,
  },
});
