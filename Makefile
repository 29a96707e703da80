# pofr — every target is a thin wrapper over go commands. Run `make help`.
# Go from /usr/local/go when it is not on PATH (root shells often lack it).
export PATH := $(PATH):/usr/local/go/bin
GO      ?= go
BIN     ?= bin
PKGS    ?= ./...
TIMEOUT ?= 80m

# nfpm builds the .deb and .rpm (pinned version, installed into bin/).
NFPM_VERSION ?= v2.48.0
VERSION ?= 0.1.0~git$(shell git rev-parse --short HEAD 2>/dev/null || echo unknown)
ARCH    ?= $(shell $(GO) env GOARCH)

.PHONY: help build packages test test-unit fuzz bench bench-quick bench-ab bench-fleet bench-fleet-full bench-floors demo demo-clean fmt vet lint clean

help: ## list targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed 's/:.*## /\t/' | expand -t 14

build: ## build bin/pofr-collector and bin/pofr-server
	$(GO) build -trimpath -o $(BIN)/ ./cmd/pofr-collector ./cmd/pofr-server

packages: ## build .deb and .rpm of pofr-collector and pofr-server into bin/pkg (nfpm)
	rm -rf bin/pkg && mkdir -p bin/pkg
	CGO_ENABLED=0 $(GO) build -trimpath -o bin/ ./cmd/pofr-collector ./cmd/pofr-server
	GOBIN=$(abspath bin) $(GO) install github.com/goreleaser/nfpm/v2/cmd/nfpm@$(NFPM_VERSION)
	for p in pofr-collector pofr-server; do \
	  packaging/man.sh bin/$$p | gzip -9n >bin/pkg/$$p.8.gz || exit 1; \
	  for f in deb rpm; do \
	    POFR_VERSION='$(VERSION)' POFR_ARCH=$(ARCH) bin/nfpm pkg --config packaging/$$p.yaml --packager $$f --target bin/pkg/ || exit 1; \
	  done; done
	rm -f bin/pkg/*.8.gz
	ls -l bin/pkg

test: vet ## every test tier: unit, fuzz seeds, priv (root), service (MariaDB, sshd), e2e
	$(GO) test -count=1 -timeout $(TIMEOUT) $(PKGS)

test-unit: ## unit tests only (no root, no services)
	$(GO) test -short -count=1 $(PKGS)

fuzz: ## run each fuzzer for FUZZTIME (default 30s)
	@for p in $$($(GO) list ./...); do \
	  for f in $$($(GO) test -list '^Fuzz' $$p | grep '^Fuzz'); do \
	    echo "== $$p $$f"; $(GO) test -run '^$$' -fuzz "^$$f$$" -fuzztime $${FUZZTIME:-30s} $$p || exit 1; \
	  done; done

bench: build ## benchmarks against auditd and a POFR-style poller (root; under 10 minutes)
	$(GO) run ./bench/cmd/pofr-bench

bench-quick: build ## the same, shorter (about 4 minutes)
	BENCH_QUICK=1 $(GO) run ./bench/cmd/pofr-bench

bench-ab: build ## only the A/B blocks (extra CPU of the exec'ing task per observer) and the idle collector (root; about 4 minutes)
	$(GO) run ./bench/cmd/pofr-bench -ab-only

bench-fleet: build ## fleet simulator, quick: 20 hosts, 2 receivers, 2 shards + Spider head, a receiver killed (root; under 2 minutes)
	$(GO) run ./bench/cmd/pofr-fleet $(FLEET_FLAGS)

bench-fleet-full: build ## fleet simulator: S=1 and S=2 with 50 hosts (each also catching up a backlog), then a 3-node Galera shard with a replica killed (root; about 15 minutes)
	$(GO) run ./bench/cmd/pofr-fleet -full $(FLEET_FLAGS)

bench-floors: ## the collector next to the least any cn_proc / fanotify reader costs here, and a go build (root; about 13 minutes)
	$(GO) test ./collector/cnproc -run '^$$' -bench 'PrivProcFloor' -benchtime 7x -timeout 30m
	$(GO) test ./collector/fanotify -run '^$$' -bench 'FileTarXFloor' -benchtime 30x -timeout 30m
	$(GO) test ./collector/fanotify -run '^$$' -bench 'FileOpenClose' -benchtime 3s -count 3 -timeout 30m
	$(GO) test ./collector/fanotify -run '^$$' -bench 'FileGoBuild' -benchtime 5x -timeout 30m

demo: build ## the whole pipeline on this host (root; installs MariaDB if missing)
	$(GO) build -trimpath -o $(BIN)/ ./scripts/demo-httpd
	POFR_BIN=$(abspath $(BIN)) scripts/demo.sh

demo-clean: ## remove what make demo left
	scripts/demo.sh clean

fmt: ## gofmt the tree
	gofmt -w $$(git ls-files '*.go')

vet: ## go vet and a gofmt check
	$(GO) vet $(PKGS)
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { gofmt -l $$(git ls-files '*.go'); echo "gofmt needed"; exit 1; }

clean: ## remove build output
	rm -rf $(BIN)
