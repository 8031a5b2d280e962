import { defineConfig } from "vitest/config";

// Pure protocol core: plain Node, no Workers runtime.
export default defineConfig({
  test: {
    include: ["test/core/**/*.test.ts"],
    environment: "node",
  },
});
