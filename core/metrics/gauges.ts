/**
 * Current values reported by many objects (e.g. each topic shard's retained messages): the
 * latest value per object, name and label, summed on read. Pure and serialisable.
 *
 * Bounds: at most `maxEntries` entries; past it the entry refreshed longest ago goes. Entries
 * are not dropped for age: a shard that holds 5 retained messages and receives no traffic for
 * a day still holds them, and its last report is still the truth. The reporters are few and
 * fixed (SHARD_COUNT topic shards, PRESENCE_SHARDS presence shards), so the bound is only
 * reached if something reports under ever new ids.
 */
export interface GaugeEntry {
  /** Kind of the reporting object ("shard", "presence", ...). */
  kind: string;
  /** The reporting object's id. */
  id: string;
  name: string;
  label?: string;
  value: number;
  /** When it was last reported (epoch ms). */
  at: number;
}

export interface GaugeInput {
  name: string;
  value: number;
  label?: string;
}

export const GAUGE_ENTRIES_KEPT = 1024;

export class GaugeTable {
  readonly #max: number;
  /** Insertion order = refresh order: a refreshed entry is re-inserted last. */
  readonly #entries = new Map<string, GaugeEntry>();

  constructor(entries: readonly GaugeEntry[] = [], maxEntries = GAUGE_ENTRIES_KEPT) {
    this.#max = maxEntries;
    for (const e of [...entries].sort((a, b) => a.at - b.at)) this.#entries.set(keyOf(e.kind, e.id, e.name, e.label), { ...e });
    this.#bound();
  }

  /** An object's current values; returns whether any value changed. */
  report(kind: string, id: string, gauges: readonly GaugeInput[], now: number): boolean {
    let changed = false;
    for (const g of gauges) {
      if (!Number.isFinite(g.value)) continue;
      const key = keyOf(kind, id, g.name, g.label);
      const old = this.#entries.get(key);
      if (old?.value !== g.value) changed = true;
      this.#entries.delete(key);
      const entry: GaugeEntry = { kind, id, name: g.name, value: g.value, at: now };
      if (g.label !== undefined) entry.label = g.label;
      this.#entries.set(key, entry);
    }
    this.#bound();
    return changed;
  }

  /** Whether any object reported this gauge. */
  has(name: string): boolean {
    for (const e of this.#entries.values()) if (e.name === name) return true;
    return false;
  }

  /** The sum over every reporting object; undefined if none reported it. */
  sum(name: string): number | undefined {
    let total: number | undefined;
    for (const e of this.#entries.values()) if (e.name === name) total = (total ?? 0) + e.value;
    return total;
  }

  /** Per label (the object's id where it gave none), sorted by label, values of one label summed. */
  byLabel(name: string): Record<string, number> {
    const out = new Map<string, number>();
    for (const e of this.#entries.values()) {
      if (e.name !== name) continue;
      const label = e.label ?? e.id;
      out.set(label, (out.get(label) ?? 0) + e.value);
    }
    return Object.fromEntries([...out].sort(([a], [b]) => a.localeCompare(b, "en", { numeric: true })));
  }

  entries(): GaugeEntry[] {
    return [...this.#entries.values()].map((e) => ({ ...e }));
  }

  get size(): number {
    return this.#entries.size;
  }

  #bound(): void {
    while (this.#entries.size > this.#max) {
      const oldest = this.#entries.keys().next().value as string;
      this.#entries.delete(oldest);
    }
  }
}

function keyOf(kind: string, id: string, name: string, label: string | undefined): string {
  return JSON.stringify([kind, id, name, label ?? null]);
}
