#!/usr/bin/env bash
# Builds kube-apiserver and etcd for the integration tests from the Go modules pinned in
# test/k8s-bin/{apiserver,etcd}/go.{mod,sum}, into a cache OUTSIDE the clone:
#
#   <cache root>/k8s-bin/<key>/{kube-apiserver,etcd}
#
# <cache root> is $IRONLB_CACHE, else /var/cache/ironlb when writable, else
# ${XDG_CACHE_HOME:-$HOME/.cache}/ironlb. <key> is the first 16 hex digits of the SHA-256 of
# apiserver/go.mod, apiserver/go.sum, etcd/go.mod, etcd/go.sum concatenated in that order
# (test/k8s/controlplane.ts computes the same key to find the binaries). GOMODCACHE and GOCACHE
# live under <cache root>/k8s-bin too, so CI can keep and reuse the whole directory.
#
# Rebuilds only when the pin changes; idempotent; concurrent runs serialise on a lock file and
# the second one finds the finished build. The last line on stdout is the binary directory.
#
#   bash scripts/build-k8s-bins.sh           # build if needed, print the directory
#   bash scripts/build-k8s-bins.sh --check   # print the directory, exit 1 if not built
#
# Knobs: IRONLB_CACHE (cache root), GO (go binary; default: `go` on PATH, else
# /usr/local/go/bin/go), IRONLB_BUILD_JOBS (go build -p, default 1), IRONLB_BUILD_NICE (default 19).
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
mods="$repo/test/k8s-bin"

log() { printf 'build-k8s-bins: %s\n' "$*" >&2; }

if [ -n "${IRONLB_CACHE:-}" ]; then
  cache_root="$IRONLB_CACHE"
elif mkdir -p /var/cache/ironlb 2>/dev/null && [ -w /var/cache/ironlb ]; then
  cache_root=/var/cache/ironlb
else
  cache_root="${XDG_CACHE_HOME:-$HOME/.cache}/ironlb"
fi
base="$cache_root/k8s-bin"

key="$(cat "$mods/apiserver/go.mod" "$mods/apiserver/go.sum" "$mods/etcd/go.mod" "$mods/etcd/go.sum" |
  sha256sum | cut -c1-16)"
out="$base/$key"

built() { [ -x "$out/kube-apiserver" ] && [ -x "$out/etcd" ] && [ -f "$out/.complete" ]; }

if [ "${1:-}" = "--check" ]; then
  echo "$out"
  built
  exit
fi

if built; then
  log "up to date"
  echo "$out"
  exit 0
fi

go="${GO:-$(command -v go || echo /usr/local/go/bin/go)}"
[ -x "$go" ] || { log "no Go toolchain (set GO=/path/to/go)"; exit 2; }

mkdir -p "$base"
exec 9>"$base/.lock"
if ! flock -n 9; then
  log "another build holds $base/.lock; waiting"
  flock 9
fi
if built; then
  log "built by a concurrent run"
  echo "$out"
  exit 0
fi

export GOTOOLCHAIN=local CGO_ENABLED=0
export GOMODCACHE="$base/gomod" GOCACHE="$base/gocache"
export GOFLAGS="-mod=readonly -buildvcs=false -trimpath -p=${IRONLB_BUILD_JOBS:-1}"
nice=(nice -n "${IRONLB_BUILD_NICE:-19}")

tmp="$base/.tmp-$key-$$"
rm -rf "$tmp"
mkdir -p "$tmp"
trap 'rm -rf "$tmp"' EXIT

modver() { (cd "$mods/$1" && "$go" list -m -f '{{.Version}}' "$2"); }
kver="$(modver apiserver k8s.io/kubernetes)"
ever="$(modver etcd go.etcd.io/etcd/server/v3)"
kminor="$(echo "$kver" | cut -d. -f2)"
log "$("$go" version); kube-apiserver $kver, etcd $ever -> $out"

start=$(date +%s)
kflags=()
for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
  kflags+=(-X "$pkg.gitVersion=$kver" -X "$pkg.gitMajor=1" -X "$pkg.gitMinor=$kminor"
    -X "$pkg.gitTreeState=clean")
done
log "building kube-apiserver (cold: ~10 min on 2 cores)"
(cd "$mods/apiserver" &&
  "${nice[@]}" "$go" build -ldflags "-s -w ${kflags[*]}" -o "$tmp/kube-apiserver" k8s.io/kubernetes/cmd/kube-apiserver)
log "building etcd"
(cd "$mods/etcd" &&
  "${nice[@]}" "$go" build -ldflags "-s -w -X go.etcd.io/etcd/api/v3/version.GitSHA=gomod-$ever" \
    -o "$tmp/etcd" go.etcd.io/etcd/server/v3)
secs=$(($(date +%s) - start))

"$tmp/kube-apiserver" --version >&2
"$tmp/etcd" --version >&2
{
  echo "kube-apiserver $kver"
  echo "etcd $ever"
  echo "go $("$go" env GOVERSION)"
  echo "build seconds $secs"
  echo "built $(date -u +%Y-%m-%dT%H:%M:%SZ)"
} >"$tmp/.complete"

rm -rf "$out"
mv "$tmp" "$out"
trap - EXIT
log "built in ${secs}s"
echo "$out"
