#!/usr/bin/env bash
# The formatter (Biome, biome.jsonc) over the folders it already owns.
#   scripts/format.sh check   fails naming each file the formatter would change (CI, npm run format:check)
#   scripts/format.sh write   formats those folders in place (npm run format)
# Folders not listed yet keep their hand formatting until scripts/format-all.sh takes them in.
set -euo pipefail
cd "$(dirname "$0")/.."

# Formatted folders and files; scripts/format-all.sh extends this line.
FORMATTED=(.)

case "${1:-check}" in
  check) exec npx --no-install biome format "${FORMATTED[@]}" ;;
  write) exec npx --no-install biome format --write "${FORMATTED[@]}" ;;
  *) echo "usage: scripts/format.sh check|write" >&2; exit 2 ;;
esac
