import type { DropKind, Effect } from "./types";

/**
 * Messages for one client dropped by a bound during one input, by kind: reported to the
 * host as one `dropped` effect per kind, which counts them and logs an episode.
 */
export class DropCount {
  readonly #clientId: string;
  readonly #counts = new Map<DropKind, number>();

  constructor(clientId: string) {
    this.#clientId = clientId;
  }

  /** Count `n` drops of `kind`; returns nothing to send, so it can stand where a send would. */
  add(kind: DropKind, n: number): undefined {
    if (n > 0) this.#counts.set(kind, (this.#counts.get(kind) ?? 0) + n);
    return undefined;
  }

  effects(): Effect[] {
    return [...this.#counts].map(([drop, count]) => ({ kind: "dropped", clientId: this.#clientId, drop, count }));
  }
}

/** Zero, one or several effects as a list. */
export function effectList(effects: Effect | Effect[] | undefined): Effect[] {
  if (effects === undefined) return [];
  return Array.isArray(effects) ? effects : [effects];
}
