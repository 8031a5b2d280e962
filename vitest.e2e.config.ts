import { defineConfig } from "vitest/config";

// End to end, in Node: real `wrangler dev` brokers on workerd (see test/e2e/broker.ts).
export default defineConfig({
  test: {
    include: ["test/e2e/**/*.test.ts"],
    environment: "node",
    testTimeout: 120_000,
    hookTimeout: 120_000,
    teardownTimeout: 30_000,
    // Each file starts its own broker; a few at once keep the machine responsive.
    maxWorkers: 2,
  },
});
