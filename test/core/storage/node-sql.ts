/**
 * Durable Object `ctx.storage.sql` over node:sqlite (Node >= 22.5): exec(query, ...bindings)
 * -> { toArray() }. `.all()` runs statements with or without result rows.
 */
import { DatabaseSync } from "node:sqlite";
import type { SqlExec } from "../../../durable-objects/storage/sql-session-store.js";

type Row = Record<string, string | number | null | ArrayBuffer | Uint8Array>;
type Binding = string | number | bigint | null | Uint8Array;

export function nodeSql(db: DatabaseSync = new DatabaseSync(":memory:")): SqlExec & { db: DatabaseSync } {
  return {
    db,
    exec<T extends Row>(query: string, ...bindings: unknown[]) {
      const rows = db.prepare(query).all(...(bindings as Binding[])) as T[];
      return { toArray: () => rows };
    },
  };
}
