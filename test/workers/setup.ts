import { applyD1Migrations } from "cloudflare:test";
import { env } from "cloudflare:workers";

// Setup files run outside per-test storage isolation, so migrations are
// applied once and every test starts from the migrated, empty database.
await applyD1Migrations(env.DB, env.TEST_MIGRATIONS);
