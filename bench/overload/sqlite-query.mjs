// Runs one read-only query on a SQLite file and prints the rows as JSON: the overload bench
// reads the broker's Durable Object storage with it. Needs node:sqlite (Node >= 22.13); the
// bench runs it with the Node that runs the broker (scripts/broker-process.mjs nodeBinary()).
//   node sqlite-query.mjs FILE SQL
import { DatabaseSync } from "node:sqlite";

const [file, sql] = process.argv.slice(2);
if (!file || !sql) throw new Error("usage: node sqlite-query.mjs FILE SQL");
const db = new DatabaseSync(file, { readOnly: true });
try {
  process.stdout.write(JSON.stringify(db.prepare(sql).all()));
} finally {
  db.close();
}
