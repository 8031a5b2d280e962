import { describe, expect, it } from "vitest";
import { ReportPacer } from "../../../core/metrics/pacer";

/** Reports a pacer lets go over `events` (times in ms), each report sent when its delay allows. */
function simulate(pacer: ReportPacer, events: number[]): number[] {
  const reports: number[] = [];
  let due: number | undefined;
  for (const at of events) {
    if (due !== undefined && due <= at) {
      pacer.reported(due);
      reports.push(due);
      due = undefined;
    }
    due ??= at + pacer.delay(at);
  }
  if (due !== undefined) {
    pacer.reported(due);
    reports.push(due);
  }
  return reports;
}

describe("ReportPacer", () => {
  it("an object woken once a minute reports from the wake itself, several counts apart included", () => {
    const pacer = new ReportPacer(1000, 4);
    for (let minute = 0; minute < 5; minute++) {
      const t = minute * 60_000;
      // three counts in one wake, separated by awaits: each report goes at once
      for (const dt of [0, 3, 7]) {
        expect(pacer.delay(t + dt)).toBe(0);
        pacer.reported(t + dt);
      }
    }
  });

  it("waits settleMs so one wake's steps travel in one report, never a period", () => {
    const pacer = new ReportPacer(1000, 2, 25);
    const reports = simulate(pacer, [0, 3, 9, 20, 60_000, 60_004]);
    expect(reports).toEqual([25, 60_025]);
    expect(() => new ReportPacer(1000, 1, 1000)).toThrow(RangeError);
  });

  it("a busy object reports about once per period, whatever its rate", () => {
    const pacer = new ReportPacer(1000, 4);
    const events = Array.from({ length: 10_000 }, (_, i) => i); // a count every ms for 10 s
    const reports = simulate(pacer, events);
    // the burst at the start, then one per period
    expect(reports.length).toBeGreaterThanOrEqual(10);
    expect(reports.length).toBeLessThanOrEqual(4 + 11);
    const late = reports.filter((t) => t >= 5000);
    for (let i = 1; i < late.length; i++) expect(late[i]! - late[i - 1]!).toBeGreaterThanOrEqual(999);
  });

  it("waits for a token once the burst is spent, and refills after a quiet spell", () => {
    const pacer = new ReportPacer(1000, 2);
    pacer.reported(0);
    pacer.reported(0);
    expect(pacer.delay(0)).toBe(1000);
    expect(pacer.delay(400)).toBe(600);
    expect(pacer.delay(5000)).toBe(0);
    pacer.reported(5000);
    expect(pacer.delay(5000)).toBe(0);
  });

  it("a clock that goes back refills nothing", () => {
    const pacer = new ReportPacer(1000, 1);
    pacer.reported(10_000);
    expect(pacer.delay(9_000)).toBe(1000);
  });

  it("refuses a period or burst that cannot work", () => {
    expect(() => new ReportPacer(0, 1)).toThrow(RangeError);
    expect(() => new ReportPacer(1000, 0)).toThrow(RangeError);
  });
});
