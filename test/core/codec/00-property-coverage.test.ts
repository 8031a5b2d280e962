// Meta-test: every MQTT 5.0 property in the codec's table (section 2.2.2.2) is exercised by at
// least one byte-annotated vector (01 ... 12), with the byte spelled as its identifier.
import { readdirSync, readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { PROPERTIES } from "../../../core/mqtt/codec/index.js";

const dir = new URL(".", import.meta.url);
const text = readdirSync(dir)
  .filter((f) => /^\d\d-.*\.test\.ts$/.test(f) && !f.startsWith("00-"))
  .map((f) => readFileSync(new URL(f, dir), "utf8"))
  .join("\n");

describe("property coverage of the vectors", () => {
  it("the table has all 27 properties", () => {
    expect(PROPERTIES.length).toBe(27);
  });
  for (const p of PROPERTIES) {
    const id = `0x${p.id.toString(16).padStart(2, "0").toUpperCase()}`;
    it(`${id} ${p.name} (${p.type}) appears in a vector`, () => {
      expect(text).toContain(`${p.name}:`);
      // The annotated byte line: "<decimal id>, ... // 0xNN ..."
      expect(text).toMatch(new RegExp(`^\\s*${p.id}, .*// ${id} `, "m"));
    });
  }
});
