#!/bin/bash
# Entrypoint of the FRR container in the ironlb speaker pod (MetalLB FRR mode, see README.md):
#   1. put daemons / vtysh.conf in place when the mounted /etc/frr has none;
#   2. when the speaker already wrote a config (container restart), boot FRR with it, so a big
#      config is loaded at start-up rather than through a reload (FRR 8.4 is slow at that);
#   3. start FRR's own init (watchfrr + daemons; it runs `vtysh -b` itself);
#   4. run `ironlb frr-reloader`, which applies every new frr.conf the speaker writes;
#   5. on SIGTERM/SIGINT stop the reloader, then FRR.
#
# Environment:
#   FRR_CONFIG_FILE        config written by the speaker (default /etc/frr_reloader/frr.conf)
#   FRR_RELOADER_PID_FILE  where the reloader writes its PID (default: next to the config)
#   IRONLB_BIN             the ironlb launcher (default: /app/bin/ironlb, else `ironlb` on PATH)
#   IRONLB_RELOADER_ARGS   extra arguments for `ironlb frr-reloader` (e.g. "--log-level debug")
#   FRR_ETC                FRR's config directory (default /etc/frr)
set -euo pipefail

FRR_CONFIG_FILE="${FRR_CONFIG_FILE:-/etc/frr_reloader/frr.conf}"
CONFIG_DIR="$(dirname "$FRR_CONFIG_FILE")"
FRR_ETC="${FRR_ETC:-/etc/frr}"
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
if [ -n "${IRONLB_BIN:-}" ]; then
  IRONLB=("$IRONLB_BIN")
elif [ -x /app/bin/ironlb ]; then
  IRONLB=(/app/bin/ironlb)
else
  IRONLB=(ironlb)
fi

log() { printf '%s reloader-entrypoint: %s\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$*" >&2; }

mkdir -p "$CONFIG_DIR" "$FRR_ETC"
for f in daemons vtysh.conf; do
  if [ ! -e "$FRR_ETC/$f" ]; then
    install -m 0640 "$HERE/$f" "$FRR_ETC/$f"
    chown frr:frr "$FRR_ETC/$f" 2>/dev/null || true
    log "installed default $FRR_ETC/$f"
  fi
done

# Boot with the speaker's last config when FRR's parser accepts it (syntax check only, no daemons).
if [ -s "$FRR_CONFIG_FILE" ]; then
  check_dir="$(mktemp -d)"
  echo 'service integrated-vtysh-config' > "$check_dir/vtysh.conf"
  install -m 0600 "$FRR_CONFIG_FILE" "$check_dir/frr.conf"
  if vtysh --config_dir "$check_dir" -C -f "$check_dir/frr.conf" >/dev/null 2>&1; then
    install -m 0640 "$FRR_CONFIG_FILE" "$FRR_ETC/frr.conf"
    chown frr:frr "$FRR_ETC/frr.conf" 2>/dev/null || true
    log "booting FRR with $FRR_CONFIG_FILE"
  else
    log "$FRR_CONFIG_FILE does not pass vtysh -C; booting FRR with its previous config"
  fi
  rm -rf "$check_dir"
fi

/usr/lib/frr/frrinit.sh start
log "FRR started"

reloader_pid=""
stopping=0
shutdown() {
  stopping=1
  log "stopping"
  if [ -n "$reloader_pid" ]; then kill -TERM "$reloader_pid" 2>/dev/null || true; wait "$reloader_pid" || true; fi
  /usr/lib/frr/frrinit.sh stop || true
  exit 0
}
trap shutdown TERM INT
# SIGHUP (sent by an upstream-style speaker to the PID in reloader.pid, or to this script): pass on.
trap '[ -n "$reloader_pid" ] && kill -HUP "$reloader_pid" 2>/dev/null || true' HUP

# shellcheck disable=SC2086 # IRONLB_RELOADER_ARGS is split on purpose
"${IRONLB[@]}" frr-reloader --dir "$CONFIG_DIR" --config-file "$(basename "$FRR_CONFIG_FILE")" \
  ${IRONLB_RELOADER_ARGS:-} &
reloader_pid=$!
# `wait` returns early when a trapped signal (HUP) arrives; keep waiting until the reloader is gone.
rc=0
while :; do
  if wait "$reloader_pid"; then rc=0; else rc=$?; fi
  kill -0 "$reloader_pid" 2>/dev/null || break
done
if [ "$stopping" = 0 ]; then
  log "frr-reloader exited (rc $rc); stopping FRR"
  /usr/lib/frr/frrinit.sh stop || true
  exit "$rc"
fi
