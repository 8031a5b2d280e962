#!/usr/bin/env python3
"""Mint an HS256 JSON Web Token that the broker accepts as an MQTT password (JWT_SECRET).

Run this where the secret lives (your provisioning service, a laptop), never on a device:
whoever holds JWT_SECRET can mint a token for any device.

Usage: JWT_SECRET=... mint_jwt.py DEVICE_ID [--ttl 86400] [--pub FILTER ...] [--sub FILTER ...]
Prints the token. Claims: sub = the user name, client_id = DEVICE_ID (the broker refuses the
token for any other client identifier), exp, and an optional EMQX-style `acl` claim that
limits the client to those topic filters (%c is the client identifier). Standard library only.
"""
import argparse
import base64
import hashlib
import hmac
import json
import os
import sys
import time


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def mint_jwt(secret: str, device_id: str, ttl: int = 86400, pub=(), sub=()) -> str:
    """header.claims.signature, each base64url without padding (RFC 7515), signed with HMAC-SHA-256."""
    header = {"alg": "HS256", "typ": "JWT"}
    claims = {"sub": device_id, "client_id": device_id, "exp": int(time.time()) + ttl}
    acl = {name: list(filters) for name, filters in (("pub", pub), ("sub", sub)) if filters}
    if acl:
        claims["acl"] = acl
    signing_input = f"{b64url(json.dumps(header).encode())}.{b64url(json.dumps(claims).encode())}"
    signature = hmac.new(secret.encode(), signing_input.encode("ascii"), hashlib.sha256).digest()
    return f"{signing_input}.{b64url(signature)}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("device_id")
    parser.add_argument("--ttl", type=int, default=86400, help="seconds until the token expires (default %(default)s)")
    parser.add_argument("--pub", action="append", default=[], metavar="FILTER", help="topic filter it may publish to (repeatable)")
    parser.add_argument("--sub", action="append", default=[], metavar="FILTER", help="topic filter it may subscribe to (repeatable)")
    args = parser.parse_args()
    secret = os.environ.get("JWT_SECRET")
    if not secret:
        sys.exit("set JWT_SECRET to the broker's secret")
    print(mint_jwt(secret, args.device_id, args.ttl, args.pub, args.sub))


if __name__ == "__main__":
    main()
