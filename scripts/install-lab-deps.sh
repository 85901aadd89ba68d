#!/bin/bash
# Install the Debian packages the real-router lab (test/lab, test/integration/lab-*.test.ts) needs.
#
# Idempotent: packages that are already installed are skipped, and `apt-get update` runs at most once,
# only when something is missing. Runs as root without stdin (CI).
#
# Installing frr or bird2 may start the distribution's own daemons in the root network namespace
# (Debian's postinst calls invoke-rc.d / deb-systemd-invoke). The lab runs its own instances inside
# network namespaces with their own pathspaces, so a system FRR/BIRD is never wanted: when THIS run
# installed the package, the service that the package started is stopped through its own init
# script / systemctl and disabled. Services of packages that were already installed are left alone
# (a warning is printed if one is running).
#
# Usage: scripts/install-lab-deps.sh            (as root)
#        LAB_DEPS_NO_OPTIONAL=1 scripts/...      skip the optional tools (tcpdump, gobgpd)
set -euo pipefail

log() { printf 'install-lab-deps: %s\n' "$*"; }

if [ "$(id -u)" -ne 0 ]; then
  log "must run as root (it calls apt-get)" >&2
  exit 1
fi

export DEBIAN_FRONTEND=noninteractive
APT_OPTS=(-o DPkg::Lock::Timeout=300 -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold)

# Required by the harness: FRR daemons + vtysh, frr-reload.py, BIRD 2 + birdc, ip/ss/nstat,
# sysctl/pgrep, unshare (UTS namespaces, gotcha G1), zcat (/proc/config.gz checks).
REQUIRED=(frr frr-pythontools bird2 iproute2 procps util-linux gzip arping ndisc6 iputils-ping gcc make libc6-dev openssl)
# Used by some lab recipes, not by the harness itself.
OPTIONAL=(tcpdump gobgpd)

is_installed() {
  [ "$(dpkg-query -W -f='${Status}' "$1" 2>/dev/null || true)" = "install ok installed" ]
}

missing_of() {
  local p out=()
  for p in "$@"; do is_installed "$p" || out+=("$p"); done
  echo "${out[@]:-}"
}

read -r -a MISSING_REQ <<<"$(missing_of "${REQUIRED[@]}")"
MISSING_OPT=()
if [ -z "${LAB_DEPS_NO_OPTIONAL:-}" ]; then
  read -r -a MISSING_OPT <<<"$(missing_of "${OPTIONAL[@]}")"
fi

for p in "${REQUIRED[@]}"; do is_installed "$p" && log "already installed: $p ($(dpkg-query -W -f='${Version}' "$p"))"; done

if [ ${#MISSING_REQ[@]} -eq 0 ] && [ ${#MISSING_OPT[@]} -eq 0 ]; then
  log "nothing to install"
else
  log "apt-get update (missing: ${MISSING_REQ[*]} ${MISSING_OPT[*]})"
  apt-get "${APT_OPTS[@]}" update -qq
  if [ ${#MISSING_REQ[@]} -gt 0 ]; then
    log "apt-get install ${MISSING_REQ[*]}"
    apt-get "${APT_OPTS[@]}" install -y -qq --no-install-recommends "${MISSING_REQ[@]}"
  fi
  if [ ${#MISSING_OPT[@]} -gt 0 ]; then
    log "apt-get install (optional) ${MISSING_OPT[*]}"
    apt-get "${APT_OPTS[@]}" install -y -qq --no-install-recommends "${MISSING_OPT[@]}" ||
      log "WARNING: optional packages failed to install: ${MISSING_OPT[*]}"
  fi
fi

for p in "${REQUIRED[@]}"; do
  if ! is_installed "$p"; then
    log "ERROR: $p is still not installed" >&2
    exit 1
  fi
done

just_installed() {
  local p
  for p in "${MISSING_REQ[@]}" "${MISSING_OPT[@]}"; do [ "$p" = "$1" ] && return 0; done
  return 1
}

have_systemd() { [ -d /run/systemd/system ]; }

# PIDs of processes named $1 that run in the root network namespace (the lab's live in other ones).
root_ns_pids() {
  local pid root_ns
  root_ns=$(readlink /proc/1/ns/net)
  for pid in $(pgrep -x "$1" || true); do
    [ "$(readlink "/proc/$pid/ns/net" 2>/dev/null || true)" = "$root_ns" ] && echo "$pid"
  done
}

# stop_system_service SERVICE PACKAGE PROCESS...
stop_system_service() {
  local svc=$1 pkg=$2
  shift 2
  local procs=("$@") running=() p
  for p in "${procs[@]}"; do
    while read -r pid; do [ -n "$pid" ] && running+=("$pid"); done <<<"$(root_ns_pids "$p")"
  done
  if ! just_installed "$pkg"; then
    if [ ${#running[@]} -gt 0 ]; then
      log "WARNING: a root-namespace $svc is running (pids ${running[*]}); $pkg was installed before this run, left alone"
    fi
    return 0
  fi
  if [ ${#running[@]} -gt 0 ]; then
    log "the $pkg package started the system $svc service (root-ns pids ${running[*]}): stopping it"
    if have_systemd; then
      systemctl stop "$svc" || true
    elif [ -x "/etc/init.d/$svc" ]; then
      "/etc/init.d/$svc" stop || true
    fi
  else
    log "no system $svc service was started by installing $pkg"
  fi
  # Keep it from starting at boot on machines that boot with an init system.
  # (systemctl disable also works offline, without systemd as PID 1: it only removes the symlinks.)
  if command -v systemctl >/dev/null && [ -e "/lib/systemd/system/$svc.service" ]; then
    systemctl disable "$svc" >/dev/null 2>&1 && log "disabled $svc.service" || true
  fi
  if [ -x "/etc/init.d/$svc" ] && command -v update-rc.d >/dev/null; then
    update-rc.d "$svc" disable >/dev/null 2>&1 && log "disabled /etc/init.d/$svc" || true
  fi
  running=()
  for p in "${procs[@]}"; do
    while read -r pid; do [ -n "$pid" ] && running+=("$pid"); done <<<"$(root_ns_pids "$p")"
  done
  if [ ${#running[@]} -gt 0 ]; then
    log "WARNING: root-namespace $svc processes still running after stop: ${running[*]}" >&2
  fi
}

stop_system_service frr frr watchfrr zebra bgpd staticd bfdd mgmtd
stop_system_service bird bird2 bird
stop_system_service gobgpd gobgpd gobgpd

log "versions: $(/usr/lib/frr/zebra --version 2>/dev/null | head -n1 || true); $(bird --version 2>&1 | head -n1 || true)"
for p in "${OPTIONAL[@]}"; do is_installed "$p" && log "optional present: $p" || log "optional absent: $p"; done
log "done"
