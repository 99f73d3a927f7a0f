#!/usr/bin/env bash
# The project's test command (README): installs what the tests need, idempotently, then
# runs every test. Safe to run on a fresh machine and again on a used one.
set -euo pipefail
cd "$(dirname "$0")/.."

need_apt=()
command -v ffprobe >/dev/null 2>&1 && command -v ffmpeg >/dev/null 2>&1 || need_apt+=(ffmpeg)   # tests decode videos; upstream results are joined and watermarked with it
command -v nasm >/dev/null 2>&1 || need_apt+=(nasm)        # optional: 4x faster H.264 encoding
[ -x /usr/bin/chromium ] || need_apt+=(chromium)            # the browser test of the page (large: only once)
command -v node >/dev/null 2>&1 || need_apt+=(nodejs)       # runs the browser test
command -v npm >/dev/null 2>&1 || need_apt+=(npm)
command -v python3 >/dev/null 2>&1 || need_apt+=(python3)  # schemathesis (scripts/api-fuzz.sh)
python3 -c 'import ensurepip' >/dev/null 2>&1 || need_apt+=(python3-venv python3-pip)
command -v pg_ctlcluster >/dev/null 2>&1 || need_apt+=(postgresql)  # the shared store's tests
if [ ${#need_apt[@]} -gt 0 ]; then
  echo "installing ${need_apt[*]} (apt-get)"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${need_apt[@]}" >/dev/null
fi

# The pinned `lumaai` SDK in target/venv (tests/e2e/dream_machine.rs would make it too).
if ! target/venv/bin/python -c 'import importlib.metadata as m, sys; sys.exit(("lumaai==" + m.version("lumaai")) not in open("tests/sdk/requirements.txt").read())' >/dev/null 2>&1; then
  echo "installing the lumaai SDK into target/venv"
  python3 -m venv target/venv
  target/venv/bin/pip install -q --disable-pip-version-check -r tests/sdk/requirements.txt
fi

# The browser test's driver, pinned, under target/ (ignored); reinstalled only when the pin changes.
PLAYWRIGHT_CORE=1.65.1
if ! grep -qs "\"version\": \"$PLAYWRIGHT_CORE\"" target/node/node_modules/playwright-core/package.json; then
  echo "installing playwright-core@$PLAYWRIGHT_CORE (npm, under target/node)"
  mkdir -p target/node
  npm install --prefix target/node --no-audit --no-fund --silent "playwright-core@$PLAYWRIGHT_CORE"
fi

# PostgreSQL on 127.0.0.1:5432 (trust auth) for the store contract and replica tests.
export LUMAGATE_TEST_DATABASE_URL="${LUMAGATE_TEST_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/postgres}"
if ! pg_isready -q -h 127.0.0.1 -p 5432; then
  echo "starting PostgreSQL"
  for version in $(ls /etc/postgresql); do
    pg_ctlcluster --skip-systemctl-redirect "$version" main start || true
  done
  for _ in $(seq 1 30); do pg_isready -q -h 127.0.0.1 -p 5432 && break; sleep 1; done
  pg_isready -h 127.0.0.1 -p 5432
fi

# A real S3-compatible server for the blob and replica tests: s3s-fs checks SigV4 and
# presigned-link expiry as S3 does. The tests start it on a free loopback port.
if [ ! -x target/s3s/bin/s3s-fs ]; then
  echo "installing s3s-fs (cargo install, once)"
  CARGO_BUILD_JOBS="${CARGO_BUILD_JOBS:-2}" cargo install s3s-fs --version 0.14.1 --features binary --locked --root target/s3s --quiet
fi

# Two cores: build once, then run the tests two at a time.
cargo build --locked --tests --bins
cargo test --locked --lib --bins --tests -- --test-threads 2

# The web page in headless Chromium against the real binary; screenshots in target/screenshots/.
node tests/browser/page.mjs
# schemathesis against the built binary and its OpenAPI document (installs into target/venv).
bash scripts/api-fuzz.sh target/debug/lumagate
# Three replicas, 1,000 tasks, a SIGKILL: slow, so it runs on its own.
cargo test --locked --test replicas -- --ignored --test-threads 1
