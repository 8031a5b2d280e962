/**
 * Counts over the device registry for statistics (GET /api/v1/stats, `$SYS/broker/clients/...`),
 * with the shared presence semantics: a device is online iff `online = 1 AND lease_expires_at > now`.
 */
import { and, count, eq, gt, sql } from "drizzle-orm";
import type { Db } from "./index";
import { devices } from "./schema";

/** Devices online now. Reads only the online rows (index `devices_lease_idx`). */
export async function countOnline(db: Db, now: number): Promise<number> {
  const [row] = await db
    .select({ n: count() })
    .from(devices)
    .where(and(eq(devices.online, true), gt(devices.leaseExpiresAt, now)));
  return row?.n ?? 0;
}

/**
 * Sessions: devices online now, or offline with a session that has not expired
 * (`session_expires_at > now`). No index covers `session_expires_at`: this reads every row of
 * `devices`; `rowsRead` says how many, so a caller that repeats it can space it out.
 */
export async function countSessions(db: Db, now: number): Promise<{ n: number; rowsRead: number }> {
  const d = devices;
  const result = await db.run(
    sql`SELECT count(*) AS n FROM ${d} WHERE (${d.online} = 1 AND ${d.leaseExpiresAt} > ${now}) OR ${d.sessionExpiresAt} > ${now}`,
  );
  const row = result.results[0] as { n?: number } | undefined;
  return { n: Number(row?.n ?? 0), rowsRead: result.meta.rows_read ?? 0 };
}
