/**
 * Lease math for the holder of a socket (SessionDO on the fast path, ConnectionDO on the
 * relay). A device is online while its lease runs; the holder renews it riding on what
 * already happens: a packet from the client once half the lease has passed, or, when no
 * packet came (keep alive 0, or longer than the lease allows), an alarm at three quarters.
 * So at most one renewal per half lease per client, never one per message.
 */

/** Whether a packet at `now` should renew a lease last renewed at `renewedAt`. */
export function renewalDue(renewedAt: number | undefined, now: number, leaseMs: number): boolean {
  return renewedAt === undefined || now - renewedAt >= leaseMs / 2;
}

/**
 * When the holder's alarm must renew the lease if no packet did: at three quarters of it,
 * which leaves a quarter for the renewal to reach D1 (the presence flush interval, normally 1 s).
 */
export function renewalDeadline(renewedAt: number, leaseMs: number): number {
  return renewedAt + Math.floor((leaseMs * 3) / 4);
}

/** PRESENCE_LEASE in ms, from seconds (at least 2 s: a shorter lease could not be renewed in time). */
export function leaseMsOf(seconds: number): number {
  return Math.max(2_000, Math.round(seconds * 1000));
}
