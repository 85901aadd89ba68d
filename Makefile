# ironlb — the two commands a newcomer needs: `make demo` and `make test`.
# Both install what they need (npm packages; for the lab tests, Debian packages as root).

SHELL := /bin/bash
JEST_JSON ?= $(CURDIR)/.jest-results.json

.PHONY: all deps lab-deps k8s-bins native build lint test test-unit demo demo-offline bench clean

all: build

node_modules/.stamp: package.json package-lock.json
	npm ci --no-audit --no-fund
	@touch $@

deps: node_modules/.stamp

# FRR, BIRD and friends for the real-router tests (root only; skipped otherwise).
lab-deps:
	@if [ "$$(id -u)" = 0 ]; then bash scripts/install-lab-deps.sh; else echo "lab-deps: not root, real-peer tests will be skipped"; fi

# kube-apiserver + etcd built from pinned Go modules into a cache outside the clone
# (/var/cache/ironlb, keyed by the go.mod/go.sum pins; ~13 min cold, seconds when warm).
k8s-bins:
	@if command -v go >/dev/null || [ -x /usr/local/go/bin/go ]; then bash scripts/build-k8s-bins.sh; \
	else echo "k8s-bins: no Go toolchain; control-plane tests will be skipped (they fail under CI=true)"; fi

# The L2 packet helper (C, gcc + libc only): native/build/ironlb-l2.
native:
	$(MAKE) -C native

build: deps native
	npm run build

lint: deps
	npm run lint

test: deps lab-deps k8s-bins lint build
	npm test -- --json --outputFile=$(JEST_JSON)

test-unit: deps build
	npm run test:unit

# As root: the live demo (bench/demo.ts): a kube-apiserver, the controller, two speaker nodes with
# FRR, a BIRD router and a client in network namespaces, fed with examples/ (installs FRR/BIRD and
# builds kube-apiserver/etcd first). Not root, or FRR/BIRD/the binaries unavailable (exit code 3):
# the offline allocation of examples/ instead.
demo: deps
	@if [ "$$(id -u)" = 0 ]; then \
	  $(MAKE) --no-print-directory lab-deps k8s-bins build || exit $$?; \
	  node dist/bench/demo.js; rc=$$?; \
	  if [ $$rc -ne 3 ]; then exit $$rc; fi; \
	  echo; echo "demo: the live demo cannot run here; showing the offline allocation instead"; \
	else \
	  echo "demo: not root (network namespaces need root); showing the offline allocation instead"; \
	fi; \
	$(MAKE) --no-print-directory demo-offline

demo-offline: build
	@echo "== ironlb validate -f examples/"
	./bin/ironlb validate -f examples/
	@echo
	@echo "== ironlb allocate -f examples/ -o table"
	./bin/ironlb allocate -f examples/ -o table

bench: build
	npm run bench:alloc

clean:
	rm -rf dist node_modules .jest-results.json
