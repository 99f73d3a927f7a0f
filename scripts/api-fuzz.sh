#!/usr/bin/env bash
# schemathesis against a running lumagate and its own /openapi.json: every operation,
# with a valid key, with the admin token (the admin API's credential) and with none. Fails on any 5xx and on any answer that breaks the
# document (status, content type, headers, body schema), or accepts what it forbids.
#
# One check is left out: positive_data_acceptance ("schema-valid request rejected").
# A JSON schema cannot say "a decodable PNG" or "a reachable http(s) URL", so requests
# that fit the schema are still, rightly, refused with the documented 400.
#
# Usage: scripts/api-fuzz.sh [path/to/lumagate]   (default target/debug/lumagate)
# API_FUZZ_EXAMPLES (default 25) bounds the examples per operation, so CI stays fast.
set -euo pipefail
cd "$(dirname "$0")/.."

BIN=${1:-target/debug/lumagate}
EXAMPLES=${API_FUZZ_EXAMPLES:-25}
VENV=target/venv
SCHEMATHESIS_VERSION=4.32.5

if ! "$VENV/bin/st" --version 2>/dev/null | grep -q "$SCHEMATHESIS_VERSION"; then
  echo "installing schemathesis $SCHEMATHESIS_VERSION into $VENV"
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q "schemathesis==$SCHEMATHESIS_VERSION"
fi

DATA=$(mktemp -d -t lumagate-fuzz-XXXXXX)
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
SERVER_PID=
cleanup() {
  if [ -n "$SERVER_PID" ]; then kill "$SERVER_PID" 2>/dev/null || true; wait "$SERVER_PID" 2>/dev/null || true; fi
  rm -rf "$DATA"
}
trap cleanup EXIT

# Tasks never finish (no renders compete with the fuzzer for the CPU) and no rate limit
# interferes; everything else is at its default.
ADMIN=fuzz-admin-$(python3 -c 'import secrets; print(secrets.token_hex(16))')
export LUMAGATE_DATA_DIR=$DATA LUMAGATE_SANDBOX_DELAY_MS=3600000 LUMAGATE_RATE_LIMIT_PER_SEC=0 LUMAGATE_LOG=warn
export LUMAGATE_ADMIN_TOKEN=$ADMIN
KEY=$("$BIN" keys create --name fuzz --tiers relax,pro | grep -v '^\s*$' | tail -n 1 | tr -d '[:space:]')
"$BIN" serve --listen "127.0.0.1:$PORT" >"$DATA/server.log" 2>&1 &
SERVER_PID=$!
python3 - "$PORT" <<'PY'
import sys, time, urllib.request
for _ in range(200):
    try:
        urllib.request.urlopen(f"http://127.0.0.1:{sys.argv[1]}/readyz", timeout=1)
        sys.exit(0)
    except Exception:
        time.sleep(0.1)
sys.exit("lumagate did not become ready")
PY

status=0
run() {
  "$VENV/bin/st" run "http://127.0.0.1:$PORT/openapi.json" \
    --checks all --exclude-checks positive_data_acceptance --max-examples "$EXAMPLES" --seed 8 --workers 1 \
    --request-timeout 20 --suppress-health-check all --no-color "$@" || status=1
}
echo "== schemathesis with a valid key"
run --header "Authorization: Bearer $KEY"
echo "== schemathesis without a key"
run
# Last, since the admin API may revoke the key or disable accounts.
echo "== schemathesis with the admin token"
run --header "Authorization: Bearer $ADMIN"
if [ $status -ne 0 ]; then
  echo "--- server log (last 50 lines)"; tail -n 50 "$DATA/server.log"
fi
exit $status
