# vipd's two set-up commands are `make demo` and `make test`.
GO      ?= go
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -X main.version=$(VERSION)
FUZZTIME ?= 30s

.PHONY: build demo test test-short bench fuzz vet clean

build:
	$(GO) build -ldflags "$(LDFLAGS)" -o bin/vipd ./cmd/vipd

# The one-command demo (needs root): installs BIRD 2 and nftables with apt
# if missing, builds vipd, then `vipd lab up`. `sudo bin/vipd lab down`
# removes it.
demo:
	@command -v bird >/dev/null 2>&1 || { apt-get update && apt-get install -y bird2; }
	@command -v nft >/dev/null 2>&1 || { apt-get update && apt-get install -y nftables; }
	$(MAKE) build
	bin/vipd lab up

# The whole suite, as CI runs it: unit tests, then the end-to-end tests
# against real BIRD and FRR in network namespaces (needs root).
test:
	$(GO) vet ./...
	$(GO) test -race -timeout 30m ./...

# Unit tests only: no namespaces, no routers.
test-short:
	$(GO) test -race -short ./...

# Benchmarks against real routers and peers (ExaBGP, gobgpd), installed
# with apt if missing (their packaged services kept from starting): tables
# on stdout, JSON in bench/results/. About 20 minutes.
bench:
	@command -v exabgp >/dev/null 2>&1 && command -v gobgpd >/dev/null 2>&1 || { \
	  p=/usr/sbin/policy-rc.d; c=; [ -e $$p ] || { printf '#!/bin/sh\nexit 101\n' >$$p; chmod +x $$p; c=1; }; \
	  apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y exabgp gobgpd curl; s=$$?; \
	  [ -z "$$c" ] || rm -f $$p; exit $$s; }
	VIPD_BENCH=1 $(GO) test -count=1 -timeout 60m -run '^TestBench' -v ./test/e2e/

# Run every fuzz target for FUZZTIME each.
fuzz:
	@for pkg in $$($(GO) list ./...); do \
	  for f in $$($(GO) test -list '^Fuzz' $$pkg | grep '^Fuzz'); do \
	    echo "== $$pkg $$f"; $(GO) test -run '^$$' -fuzz "^$$f$$" -fuzztime $(FUZZTIME) $$pkg || exit 1; \
	  done; \
	done

clean:
	rm -rf bin
