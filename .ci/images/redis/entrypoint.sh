#!/bin/sh
# Listen on the container's network, not only its loopback (Debian's default config).
set -eu
if [ "${1:-}" = "redis-server" ]; then
  shift
fi
exec redis-server --bind 0.0.0.0 --dir /tmp "$@"
