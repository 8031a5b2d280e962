#!/bin/sh
# Posts ONE batch of messages to the broker's bulk HTTP endpoint, POST /api/v1/publish/bulk,
# and retries it safely until it is accepted. POSIX sh + curl only.
#
#   API_KEY=emk_... ./gateway.sh batch.json        # or:  ... | ./gateway.sh
#
# The batch is a JSON array in EMQX's shape (docs/ingest.md), e.g.
#   [{"topic":"sites/berlin/sensor-1/temp","payload":"21.5","qos":1,"device":"sensor-1"}]
# An item's "device" makes that device show online over HTTP (GET /api/v1/devices).
#
# Rules this script keeps (why: a gateway must neither lose a batch nor publish it twice):
# - one Idempotency-Key per batch, made once and sent on EVERY retry: if an answer got lost
#   on the way back, the broker replays its first answer instead of publishing again;
# - retries on 429 (waiting Retry-After), 5xx and connection errors, with exponential backoff
#   and full jitter (so many gateways that failed together don't retry together);
# - never retries another 4xx: the request itself is wrong, sending it again cannot help;
#   the problem JSON goes to stderr and the script exits 2 (so does a certificate that does
#   not verify: that is configuration, not a passing fault);
# - gives up after MAX_ATTEMPTS (exit 3), so a cron job or a supervisor can decide what next.
#
# Settings (environment):
#   BROKER_URL       http(s)://host[:port] of the broker   (default http://127.0.0.1:8787)
#   API_KEY          the gateway's API key, emk_...         (required)
#   CA_FILE          a CA to trust, e.g. .wrangler/state/tls/ca.pem of `npm start -- --tls`
#   MAX_ATTEMPTS     requests per batch before giving up    (default 8)
#   BACKOFF_BASE_MS  first backoff ceiling, doubled per try (default 500)
#   BACKOFF_MAX_MS   backoff ceiling                        (default 30000)
#   TIMEOUT_S        whole-request timeout for curl         (default 30)
#
# Exit codes: 0 accepted (answer on stdout), 2 refused (4xx, or a certificate that does not
# verify), 3 gave up, 64 usage.
set -u

BROKER_URL=${BROKER_URL:-http://127.0.0.1:8787}
MAX_ATTEMPTS=${MAX_ATTEMPTS:-8}
BACKOFF_BASE_MS=${BACKOFF_BASE_MS:-500}
BACKOFF_MAX_MS=${BACKOFF_MAX_MS:-30000}
TIMEOUT_S=${TIMEOUT_S:-30}

if [ -z "${API_KEY:-}" ]; then
  echo "gateway.sh: set API_KEY (an emk_... key, see README.md)" >&2
  exit 64
fi

work=$(mktemp -d) || exit 1
trap 'rm -rf "$work"' EXIT INT TERM

# The batch is read once into a file, so every retry sends the very same bytes: the broker
# compares a retry's body with the first request's (a different body is 422).
if [ $# -ge 1 ] && [ "$1" != "-" ]; then
  cp "$1" "$work/batch.json" || exit 64
else
  cat >"$work/batch.json"
fi

# 128 random bits, hex: unique per batch (the broker keeps a key's answer for 24 h).
idempotency_key=$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')

# Milliseconds to wait before retry number $1 (1, 2, ...): a random value in
# [0, min(BACKOFF_MAX_MS, BACKOFF_BASE_MS * 2^($1-1))] ("full jitter").
backoff_ms() {
  awk -v n="$1" -v base="$BACKOFF_BASE_MS" -v max="$BACKOFF_MAX_MS" \
    -v seed="$(od -An -N4 -tu4 /dev/urandom | tr -d ' ')" 'BEGIN {
    cap = base * 2 ^ (n - 1); if (cap > max) cap = max
    srand(seed + 0); printf "%d\n", rand() * cap
  }'
}

# Sleeps $1 milliseconds (GNU and BusyBox sleep take fractions of a second).
sleep_ms() {
  sleep "$(awk -v ms="$1" 'BEGIN { printf "%.3f\n", ms / 1000 }')"
}

# The Retry-After header of the last answer, if it is a number of seconds (else empty).
retry_after_s() {
  tr -d '\r' <"$work/headers" | awk -F': *' 'tolower($1) == "retry-after" && $2 ~ /^[0-9]+$/ { print $2 }' | tail -n 1
}

attempt=0
while :; do
  attempt=$((attempt + 1))
  # -w prints the status; curl exits non-zero (status 000) when no answer came back at all:
  # refused, reset, timed out or an empty reply. Those are retried like a 5xx.
  status=$(curl -sS -o "$work/body" -D "$work/headers" -w '%{http_code}' \
    --max-time "$TIMEOUT_S" ${CA_FILE:+--cacert "$CA_FILE"} \
    -X POST "$BROKER_URL/api/v1/publish/bulk" \
    -H "Authorization: Bearer $API_KEY" \
    -H 'Content-Type: application/json' \
    -H "Idempotency-Key: $idempotency_key" \
    --data-binary @"$work/batch.json" 2>"$work/curl-error") || curl_exit=$?

  # curl 60: the broker's certificate did not verify. Retrying cannot fix that: trust the
  # right CA (CA_FILE) instead.
  if [ "${curl_exit:-0}" -eq 60 ]; then
    echo "gateway.sh: $(cat "$work/curl-error") (set CA_FILE?), not retrying" >&2
    exit 2
  fi
  curl_exit=0
  [ -n "$status" ] || status=000

  case $status in
    2??)
      # 200: every item reached a subscriber; 202: some had none (still accepted). The body
      # is the per-item results, in item order. A replay carries Idempotent-Replayed: true.
      cat "$work/body"; echo
      exit 0 ;;
    429) retry_after=$(retry_after_s)
         if [ -n "$retry_after" ]; then wait_ms=$((retry_after * 1000)); else wait_ms=$(backoff_ms "$attempt"); fi
         why="429 rate-limited" ;;
    5??) wait_ms=$(backoff_ms "$attempt"); why="$status from the broker" ;;
    000) wait_ms=$(backoff_ms "$attempt"); why="no answer: $(cat "$work/curl-error")" ;;
    *)
      echo "gateway.sh: refused with $status, not retrying:" >&2
      cat "$work/body" >&2; echo >&2
      exit 2 ;;
  esac

  if [ "$attempt" -ge "$MAX_ATTEMPTS" ]; then
    echo "gateway.sh: giving up after $attempt attempts ($why); Idempotency-Key $idempotency_key" >&2
    exit 3
  fi
  echo "gateway.sh: attempt $attempt: $why; retrying in ${wait_ms} ms" >&2
  sleep_ms "$wait_ms"
done
