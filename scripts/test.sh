#!/usr/bin/env bash
# The project's test command (README): installs what the tests need, idempotently, then
# runs every test. Safe to run on a fresh machine and again on a used one.
set -euo pipefail
cd "$(dirname "$0")/.."

need_apt=()
command -v ffprobe >/dev/null 2>&1 || need_apt+=(ffmpeg)   # tests decode rendered videos
command -v nasm >/dev/null 2>&1 || need_apt+=(nasm)        # optional: 4x faster H.264 encoding
if [ ${#need_apt[@]} -gt 0 ]; then
  echo "installing ${need_apt[*]} (apt-get)"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${need_apt[@]}" >/dev/null
fi

# Two cores: build once, then run the tests two at a time.
cargo build --locked --tests --bins
cargo test --locked --lib --bins --tests -- --test-threads 2
