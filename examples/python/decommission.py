#!/usr/bin/env python3
"""Retire a device for good through the broker's HTTP API, in one call.

DELETE /api/v1/devices/<id> ends its session without publishing its Will, clears its retained
topics (devices/<id>/# by default: no stale "online" left behind), marks its record
decommissioned and revokes its credentials and API keys (docs/devices.md). With
dry_run=True the broker answers what it would do and changes nothing.

Usage: ADMIN_TOKEN=... decommission.py DEVICE_ID [--dry-run] [--retained FILTER ...]
       [--api-url https://127.0.0.1:8787] [--ca-file .wrangler/state/tls/ca.pem]
Uses only the standard library.
"""
import argparse
import json
import os
import ssl
import sys
import urllib.error
import urllib.parse
import urllib.request

DEFAULT_API_URL = "https://127.0.0.1:8787"


def decommission_device(device_id, dry_run=False, retained=(), api_url=None, admin_token=None, ca_file=None):
    """Decommissions `device_id`; returns the broker's answer as a dict.

    `retained`: topic filters to clear instead of the broker's DECOMMISSION_RETAINED default.
    Raises RuntimeError with the broker's problem details on a refusal (401 wrong token,
    404 device unknown, 500 decommission-incomplete: simply call again, every step is idempotent).
    """
    api_url = (api_url or os.environ.get("EDGE_MQTT_URL") or DEFAULT_API_URL).rstrip("/")
    admin_token = admin_token or os.environ.get("ADMIN_TOKEN")
    if not admin_token:
        raise RuntimeError("set ADMIN_TOKEN to the broker's admin token")
    query = [("retained", f) for f in retained] + ([("dry_run", "true")] if dry_run else [])
    url = f"{api_url}/api/v1/devices/{urllib.parse.quote(device_id, safe='')}"
    if query:
        url += "?" + urllib.parse.urlencode(query)
    request = urllib.request.Request(url, method="DELETE", headers={"Authorization": f"Bearer {admin_token}", "Accept": "application/json"})
    # cafile=None: the system's CAs (a deployed broker); the local CA for `npm start -- --tls`.
    context = ssl.create_default_context(cafile=ca_file or os.environ.get("MQTT_CA_FILE")) if url.startswith("https:") else None
    try:
        with urllib.request.urlopen(request, context=context, timeout=30) as response:
            return json.load(response)
    except urllib.error.HTTPError as err:
        raise RuntimeError(f"DELETE {url}: {err.code} {err.read().decode('utf-8', 'replace')}") from None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("device_id")
    parser.add_argument("--dry-run", action="store_true", help="only say what would be done")
    parser.add_argument("--retained", action="append", default=[], metavar="FILTER", help="retained filter to clear (repeatable; default: the broker's devices/<id>/#)")
    parser.add_argument("--api-url", default=os.environ.get("EDGE_MQTT_URL", DEFAULT_API_URL), help="the broker's HTTP base URL (default %(default)s)")
    parser.add_argument("--ca-file", default=os.environ.get("MQTT_CA_FILE"), help="CA file for https:// (default: the system's CAs)")
    args = parser.parse_args()
    try:
        answer = decommission_device(args.device_id, args.dry_run, args.retained, args.api_url, ca_file=args.ca_file)
    except (RuntimeError, urllib.error.URLError) as err:
        sys.exit(str(err))
    print(json.dumps(answer, indent=2))


if __name__ == "__main__":
    main()
