import { describe, expect, it } from "vitest";

describe("test sandbox", () => {
  it("refuses outbound network", async () => {
    const res = await fetch("https://example.com/");
    expect(res.status).toBe(503);
    expect(res.headers.get("X-Outbound-Refused")).toBe("1");
    expect(await res.text()).toContain("outbound network disabled in tests");
  });
});
