# vipd's two set-up commands are `sudo make demo` and `sudo make test`.

# Go: the one on PATH, else where the official tarball installs it. sudo's
# secure_path drops /usr/local/go/bin, so `sudo make …` needs the fallback.
GO      ?= $(firstword $(shell command -v go 2>/dev/null) $(wildcard /usr/local/go/bin/go))
# The tests run `go build` themselves: they need the same Go on PATH.
export PATH := $(if $(GO),$(patsubst %/,%,$(dir $(GO))):)$(PATH)
GO_MIN  := 26# go.mod's go 1.26
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -X main.version=$(VERSION)
FUZZTIME ?= 30s

# What the tests run, and the Debian packages that have it (gcc: -race
# needs cgo; etcd backs the Kubernetes tests' API server).
TEST_PROGRAMS := bird birdc vtysh /usr/lib/frr/zebra /usr/lib/frr/bgpd /usr/lib/frr/bfdd nft ip sysctl gcc etcd
TEST_PACKAGES := bird2 frr nftables iproute2 procps gcc libc6-dev etcd-server

# The Kubernetes tests' kube-apiserver, kubectl and etcd: the directory in
# VIPD_KUBE_ASSETS if set, else the one test/kubeassets/build.sh prints,
# which builds them on first use (8-10 minutes) and caches them.
kube-assets = $${VIPD_KUBE_ASSETS:-$$(GO=$(GO) test/kubeassets/build.sh)}

# MetalLB's controller, speaker and CRDs, which the Kubernetes benchmark
# runs beside vipd: the directory in VIPD_METALLB if set, else the one
# test/metallb/build.sh prints, which builds them from the module proxy on
# first use and caches them. Only `make bench` needs it.
metallb = $${VIPD_METALLB:-$$(GO=$(GO) test/metallb/build.sh)}

# apt-install installs $(1) with the packages' services kept from starting
# (a policy-rc.d that says no, removed again if it was ours): the tests and
# the lab run their own BIRD and FRR inside namespaces.
define apt-install
p=/usr/sbin/policy-rc.d; c=; [ -e $$p ] || { printf '#!/bin/sh\nexit 101\n' >$$p; chmod +x $$p; c=1; }; \
apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends $(1); s=$$?; \
[ -z "$$c" ] || rm -f $$p; exit $$s
endef

.PHONY: build demo test test-tools test-short bench fuzz vet generate clean go-check

go-check:
	@[ -n "$(GO)" ] || { echo "make: Go is not installed (nor on PATH, nor in /usr/local/go/bin): vipd needs Go 1.$(GO_MIN) or newer, see https://go.dev/dl/ (the README's Quick start says how)" >&2; exit 1; }
	@v=$$($(GO) env GOVERSION); m=$${v#go1.}; m=$${m%%.*}; \
	  [ "$$m" -ge $(GO_MIN) ] 2>/dev/null || { echo "make: $(GO) is $$v; vipd needs Go 1.$(GO_MIN) or newer (https://go.dev/dl/)" >&2; exit 1; }

build: go-check
	$(GO) build -ldflags "$(LDFLAGS)" -o bin/vipd ./cmd/vipd

# The one-command demo (needs root): installs BIRD 2 and nftables with apt
# if missing, builds vipd, then `vipd lab up`. `sudo bin/vipd lab down`
# removes it.
demo: go-check
	@command -v bird >/dev/null 2>&1 && command -v nft >/dev/null 2>&1 || { $(call apt-install,bird2 nftables); }
	$(MAKE) build
	bin/vipd lab up

# The whole suite, as CI runs it (needs root): installs BIRD 2, FRR and
# nftables with apt if missing, then runs the unit tests and the
# end-to-end tests against real BIRD and FRR in network namespaces. Run
# as root, a test that lacks a program fails, naming it: this target never
# passes a suite that did not run.
test: go-check test-tools
	$(GO) vet ./...
	a=$(kube-assets) && VIPD_KUBE_ASSETS=$$a $(GO) test -race -timeout 30m ./...

test-tools:
	@[ "$$(id -u)" -eq 0 ] || { echo "make test: needs root (network namespaces, real routers): run sudo make test, or make test-short for the unit tests alone" >&2; exit 1; }
	@missing=; for p in $(TEST_PROGRAMS); do command -v $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	  [ -z "$$missing" ] || { echo "make test: installing $(TEST_PACKAGES) for:$$missing"; $(call apt-install,$(TEST_PACKAGES)); }
	@missing=; for p in $(TEST_PROGRAMS); do command -v $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	  [ -z "$$missing" ] || { echo "make test: still missing after apt-get:$$missing" >&2; exit 1; }

# Unit tests only: no namespaces, no routers.
test-short: go-check
	$(GO) test -race -short ./...

# Benchmarks against real routers and peers (ExaBGP, gobgpd), installed
# with apt if missing (their packaged services kept from starting), and
# MetalLB (built from the module proxy on first use): tables on stdout,
# JSON in bench/results/. About 45 minutes.
bench: go-check
	@command -v exabgp >/dev/null 2>&1 && command -v gobgpd >/dev/null 2>&1 || { $(call apt-install,exabgp gobgpd curl); }
	a=$(kube-assets) && m=$(metallb) && VIPD_KUBE_ASSETS=$$a VIPD_METALLB=$$m VIPD_BENCH=1 $(GO) test -count=1 -timeout 90m -run '^TestBench' -v ./test/e2e/

# Run every fuzz target for FUZZTIME each.
fuzz: go-check
	@for pkg in $$($(GO) list ./...); do \
	  for f in $$($(GO) test -list '^Fuzz' $$pkg | grep '^Fuzz'); do \
	    echo "== $$pkg $$f"; $(GO) test -run '^$$' -fuzz "^$$f$$" -fuzztime $(FUZZTIME) $$pkg || exit 1; \
	  done; \
	done

vet: go-check
	$(GO) vet ./...

# Rebuild the XDP program's object and Go bindings (bpf2go), which are
# committed so that building vipd needs no clang. Needs Debian's clang,
# llvm and libbpf-dev (installed with apt if missing).
generate: go-check
	@command -v clang >/dev/null 2>&1 && [ -e /usr/include/bpf/bpf_helpers.h ] || { $(call apt-install,clang llvm libbpf-dev); }
	$(GO) generate ./internal/dataplane/xdp/

clean:
	rm -rf bin
