/**
 * The retained-message alert: raised once when the total retained count passes the threshold
 * (count > threshold), cleared once when it falls back below it (count < threshold); at the
 * threshold itself it stays as it is, so a count moving by one around it does not flap.
 * A threshold of 0 turns the alert off (and clears one that was raised).
 */
export interface RetainedAlert {
  count: number;
  threshold: number;
  /** When it was raised (epoch ms). */
  at: number;
}

export type AlertChange = { kind: "raised"; alert: RetainedAlert } | { kind: "cleared"; previous: RetainedAlert };

export interface AlertStep {
  /** The alert in force after this count, or null. */
  alert: RetainedAlert | null;
  /** What to announce, if anything changed. */
  change?: AlertChange;
}

export function retainedAlertStep(current: RetainedAlert | null, count: number, threshold: number, now: number): AlertStep {
  if (threshold <= 0) return current ? { alert: null, change: { kind: "cleared", previous: current } } : { alert: null };
  if (!current && count > threshold) {
    const alert = { count, threshold, at: now };
    return { alert, change: { kind: "raised", alert } };
  }
  if (current && count < threshold) return { alert: null, change: { kind: "cleared", previous: current } };
  // Raised: keep the count it was raised with (the announcement); the live count is elsewhere.
  return { alert: current };
}
