#!/usr/bin/env python3
"""A small HTTP gateway: readings in, bulk batches out (POST /api/v1/publish/bulk).

Python standard library only (urllib), for gateways where an MQTT connection is not an
option. It reads readings as JSON lines on stdin (or simulates a few devices), groups them
into batches of up to --max-items items or --max-wait seconds, whichever comes first, and
sends each batch with the rules of docs/ingest.md:

- one Idempotency-Key per batch, reused on every retry, so a batch whose answer was lost is
  replayed by the broker (same answer, header Idempotent-Replayed: true), never published twice;
- retries on 429 (waiting Retry-After), 5xx and connection errors, with exponential backoff
  and full jitter, at most --max-attempts requests per batch;
- never retries another 4xx: it prints the problem JSON and exits 2 (as it does when the
  broker's certificate does not verify: configuration, not a passing fault).

Each reading names its device, and so does each item it becomes: the broker then shows that
device online with transport "http" (GET /api/v1/devices) while it keeps reporting.

    API_KEY=emk_... ./gateway.py < readings.jsonl
    API_KEY=emk_... ./gateway.py --simulate 3 --count 10

A reading is {"device": "sensor-1", ...}; "topic" (default <prefix>/<device>/telemetry),
"payload" (default: the reading without device/topic/qos/retain, as JSON), "qos" (default 1)
and "retain" (default false) are taken from it when present.

Exit codes: 0 every batch accepted, 2 a batch refused (4xx, or a certificate that does not
verify), 3 gave up retrying, 64 usage.
"""
from __future__ import annotations

import argparse
import http.client
import json
import os
import queue
import random
import secrets
import ssl
import sys
import threading
import time
import urllib.error
import urllib.request
from typing import Any, Iterator

EXIT_REFUSED = 2
EXIT_GAVE_UP = 3


class Refused(Exception):
    """The broker refused a batch with a 4xx other than 429, or its certificate did not
    verify: retrying cannot help."""

    def __init__(self, why: str, body: str) -> None:
        super().__init__(why)
        self.body = body


class GaveUp(Exception):
    """max_attempts requests were made and none was accepted."""


class Sender:
    """Sends batches to one broker with one API key, retrying as the module says."""

    def __init__(self, broker_url: str, api_key: str, ca_file: str | None, max_attempts: int,
                 backoff_base: float, backoff_max: float, timeout: float) -> None:
        self.url = broker_url.rstrip("/") + "/api/v1/publish/bulk"
        self.api_key = api_key
        self.context = ssl.create_default_context(cafile=ca_file) if ca_file else None
        self.max_attempts = max_attempts
        self.backoff_base = backoff_base
        self.backoff_max = backoff_max
        self.timeout = timeout

    def send(self, items: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Publishes one batch; returns the broker's per-item results, in item order."""
        # Encoded once: a retry must send the same bytes, or the broker answers 422.
        body = json.dumps(items).encode()
        key = secrets.token_hex(16)  # one per batch, kept across its retries
        for attempt in range(1, self.max_attempts + 1):
            status, headers, text = self._post(body, key)
            if 200 <= status < 300:
                if headers.get("idempotent-replayed") == "true":
                    log(f"batch {key}: answer replayed by the broker (an earlier try had gone through)")
                return json.loads(text)
            if status == 429:
                wait = retry_after(headers) or self._backoff(attempt)
                why = "429 rate-limited"
            elif status >= 500 or status == 0:
                wait = self._backoff(attempt)
                why = text if status == 0 else f"{status} from the broker"
            else:
                raise Refused(f"refused with {status}", text)
            if attempt == self.max_attempts:
                break
            log(f"batch {key}: attempt {attempt}: {why}; retrying in {wait:.2f} s")
            time.sleep(wait)
        raise GaveUp(f"batch {key}: gave up after {self.max_attempts} attempts ({why})")

    def _post(self, body: bytes, key: str) -> tuple[int, dict[str, str], str]:
        """One request: (status, headers, body text); status 0 when no answer came back."""
        request = urllib.request.Request(self.url, data=body, method="POST", headers={
            "Authorization": f"Bearer {self.api_key}",
            "Content-Type": "application/json",
            "Idempotency-Key": key,
        })
        try:
            with urllib.request.urlopen(request, timeout=self.timeout, context=self.context) as res:
                return res.status, lower_keys(res.headers), res.read().decode()
        except urllib.error.HTTPError as err:  # a 4xx/5xx answer: still an answer
            return err.code, lower_keys(err.headers), err.read().decode(errors="replace")
        except urllib.error.URLError as err:
            if isinstance(err.reason, ssl.SSLCertVerificationError):
                # Configuration, not a passing fault: trust the right CA (--ca-file).
                raise Refused("the broker's certificate did not verify (set CA_FILE?)", str(err.reason)) from err
            return 0, {}, f"no answer: {err.reason!r}"
        except (OSError, http.client.HTTPException) as err:
            # Refused, reset, timed out, or the connection closed without an answer: the batch
            # may or may not have been published; the same Idempotency-Key makes retrying safe.
            return 0, {}, f"no answer: {err!r}"

    def _backoff(self, attempt: int) -> float:
        """Full jitter: uniform in [0, min(max, base * 2^(attempt-1))] seconds."""
        return random.uniform(0, min(self.backoff_max, self.backoff_base * 2 ** (attempt - 1)))


def lower_keys(headers: Any) -> dict[str, str]:
    """Header names are case-insensitive; a dict of them is keyed in lower case."""
    return {name.lower(): value for name, value in headers.items()}


def retry_after(headers: dict[str, str]) -> float | None:
    """Retry-After in seconds when the broker sent it as a number (it does)."""
    value = headers.get("retry-after", "").strip()
    return float(value) if value.isdigit() else None


def to_item(reading: dict[str, Any], prefix: str) -> dict[str, Any]:
    """A reading as one bulk item (EMQX's shape) that names its device."""
    device = str(reading["device"])
    rest = {k: v for k, v in reading.items() if k not in ("device", "topic", "payload", "qos", "retain")}
    payload = reading.get("payload", json.dumps(rest, separators=(",", ":")))
    return {
        "topic": reading.get("topic", f"{prefix}/{device}/telemetry"),
        "payload": payload if isinstance(payload, str) else json.dumps(payload),
        "qos": reading.get("qos", 1),
        "retain": reading.get("retain", False),
        "device": device,
    }


def stdin_readings() -> Iterator[dict[str, Any]]:
    """JSON lines from stdin; a line that is not a reading naming its device is skipped (and
    said so): one garbled line from a sensor must not stop the gateway."""
    for number, line in enumerate(sys.stdin, 1):
        if not line.strip():
            continue
        try:
            reading = json.loads(line)
        except ValueError as err:
            log(f"stdin line {number} skipped: not JSON ({err})")
            continue
        if not isinstance(reading, dict) or not reading.get("device"):
            log(f"stdin line {number} skipped: a reading is an object with a \"device\"")
            continue
        yield reading


def simulated_readings(devices: int, count: int, interval: float) -> Iterator[dict[str, Any]]:
    """count rounds of one reading per device, interval seconds apart."""
    for n in range(count):
        for d in range(1, devices + 1):
            yield {"device": f"sim-{d}", "temperature": round(20 + random.uniform(-2, 2), 2), "seq": n}
        if n + 1 < count:
            time.sleep(interval)


def batches(readings: Iterator[dict[str, Any]], max_items: int, max_wait: float) -> Iterator[list[dict[str, Any]]]:
    """Groups readings into lists of up to max_items, each sent at most max_wait seconds after
    its first reading arrived (a slow trickle still goes out on time)."""
    inbox: queue.Queue[dict[str, Any] | None] = queue.Queue()

    def pump() -> None:  # readings block (stdin, sleeps); the batcher must not
        try:
            for reading in readings:
                inbox.put(reading)
        finally:
            inbox.put(None)

    threading.Thread(target=pump, daemon=True).start()
    batch: list[dict[str, Any]] = []
    deadline = 0.0
    while True:
        timeout = max(0.0, deadline - time.monotonic()) if batch else None
        try:
            reading = inbox.get(timeout=timeout)
        except queue.Empty:  # max_wait passed since this batch's first reading
            yield batch
            batch = []
            continue
        if reading is None:  # input ended: send what is left
            if batch:
                yield batch
            return
        if not batch:
            deadline = time.monotonic() + max_wait
        batch.append(reading)
        if len(batch) >= max_items:
            yield batch
            batch = []


def print_results(items: list[dict[str, Any]], results: list[dict[str, Any]]) -> None:
    """One JSON line per item: its device and topic with the broker's answer for it."""
    for item, result in zip(items, results):
        print(json.dumps({"device": item["device"], "topic": item["topic"], **result}), flush=True)


def log(text: str) -> None:
    print(f"gateway.py: {text}", file=sys.stderr, flush=True)


def main() -> int:
    env = os.environ
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--broker-url", default=env.get("BROKER_URL", "http://127.0.0.1:8787"))
    parser.add_argument("--ca-file", default=env.get("CA_FILE"), help="CA to trust (npm start -- --tls: .wrangler/state/tls/ca.pem)")
    parser.add_argument("--prefix", default=env.get("TOPIC_PREFIX", "gateway"), help="topic prefix when a reading has no topic")
    parser.add_argument("--max-items", type=int, default=100, help="items per batch (the broker allows MAX_BULK_ITEMS, 1000)")
    parser.add_argument("--max-wait", type=float, default=5.0, help="seconds a reading may wait for its batch")
    parser.add_argument("--max-attempts", type=int, default=int(env.get("MAX_ATTEMPTS", "8")))
    parser.add_argument("--backoff-base", type=float, default=int(env.get("BACKOFF_BASE_MS", "500")) / 1000)
    parser.add_argument("--backoff-max", type=float, default=int(env.get("BACKOFF_MAX_MS", "30000")) / 1000)
    parser.add_argument("--timeout", type=float, default=30.0, help="seconds per request")
    parser.add_argument("--simulate", type=int, metavar="DEVICES", help="simulate DEVICES devices instead of reading stdin")
    parser.add_argument("--count", type=int, default=5, help="with --simulate: readings per device")
    parser.add_argument("--interval", type=float, default=1.0, help="with --simulate: seconds between rounds")
    args = parser.parse_args()
    if args.max_attempts < 1 or args.max_items < 1:
        parser.error("--max-attempts and --max-items must be at least 1")
    api_key = env.get("API_KEY")
    if not api_key:
        log("set API_KEY (an emk_... key, see README.md)")
        return 64

    sender = Sender(args.broker_url, api_key, args.ca_file, args.max_attempts,
                    args.backoff_base, args.backoff_max, args.timeout)
    readings = simulated_readings(args.simulate, args.count, args.interval) if args.simulate else stdin_readings()
    for batch in batches(readings, args.max_items, args.max_wait):
        items = [to_item(r, args.prefix) for r in batch]
        try:
            print_results(items, sender.send(items))
        except Refused as err:
            log(f"{err}, not retrying:\n{err.body}")
            return EXIT_REFUSED
        except GaveUp as err:
            log(str(err))
            return EXIT_GAVE_UP
    return 0


if __name__ == "__main__":
    sys.exit(main())
