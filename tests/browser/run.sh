#!/usr/bin/env bash
# Real-browser tests of the Lineage Explorer and Proof Viewer.
#
# Builds the dev binary (cargo build, nothing else), starts `lineage demo` on a
# loopback port with a throwaway data directory, runs the playwright-core tests
# in headless Chromium (/usr/bin/chromium, the Debian package), and always
# stops the server. The tests get the data directory (LINEAGE_DATA_DIR) to
# sign governance statements with the demo's development authority key, and
# the binary (LINEAGE_BIN) to start a second ledger of their own. Screenshots land in tests/browser/screenshots/ (ignored by
# git); LINEAGE_UPDATE_SCREENSHOTS=1 also copies the README's screenshots into docs/img/.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/lineage/target}"
export CHROMIUM="${CHROMIUM:-/usr/bin/chromium}"

if [ ! -x "$CHROMIUM" ]; then
  echo "no Chromium at $CHROMIUM: apt-get install chromium (or set CHROMIUM)" >&2
  exit 1
fi
(cd "$root" && cargo build --bin lineage)
bin="$CARGO_TARGET_DIR/debug/lineage"
if [ ! -d "$here/node_modules/playwright-core" ]; then
  (cd "$here" && npm ci --no-audit --no-fund)
fi

work="$(mktemp -d)"
"$bin" demo --listen 127.0.0.1:0 --data-dir "$work/ledger" >"$work/stdout" 2>"$work/stderr" &
server=$!
stop() {
  kill "$server" 2>/dev/null || true
  wait "$server" 2>/dev/null || true
  rm -rf "$work"
}
trap stop EXIT

url=""
for _ in $(seq 1 600); do
  url="$(sed -n 's/^lineage: listening on //p' "$work/stdout")"
  [ -n "$url" ] && break
  if ! kill -0 "$server" 2>/dev/null; then
    echo "lineage demo exited:" >&2
    cat "$work/stderr" >&2
    exit 1
  fi
  sleep 0.1
done
if [ -z "$url" ]; then
  echo "lineage demo did not start listening" >&2
  exit 1
fi
echo "lineage demo at $url"

mkdir -p "$here/screenshots"
cd "$here"
status=0
LINEAGE_URL="$url" LINEAGE_DATA_DIR="$work/ledger" LINEAGE_BIN="$bin" node --test --test-concurrency=1 tests/ || status=$?
if [ "$status" -ne 0 ]; then
  echo "--- lineage demo stderr (last 40 lines) ---" >&2
  tail -n 40 "$work/stderr" >&2
fi
if [ "$status" -eq 0 ] && [ "${LINEAGE_UPDATE_SCREENSHOTS:-}" = 1 ]; then
  mkdir -p "$root/docs/img"
  cp "$here/screenshots/event.png" "$root/docs/img/explorer-event.png"
  cp "$here/screenshots/proof-verified.png" "$root/docs/img/explorer-proof.png"
  cp "$here/screenshots/health.png" "$root/docs/img/explorer-health.png"
  cp "$here/screenshots/governance.png" "$root/docs/img/explorer-governance.png"
  echo "updated docs/img/explorer-event.png, explorer-proof.png, explorer-health.png and explorer-governance.png"
fi
exit "$status"
