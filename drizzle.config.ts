import { defineConfig } from "drizzle-kit";

// SQL migrations for D1, applied by `wrangler d1 migrations apply DB`.
// Wrangler wants flat `NNNN_name.sql` files in migrations/; drizzle-kit's
// "index" prefix writes exactly that (its journal goes to migrations/meta/).
export default defineConfig({
  dialect: "sqlite",
  schema: "./db/schema.ts",
  out: "./migrations",
  migrations: { prefix: "index" },
  strict: true,
  verbose: true,
});
