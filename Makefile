# ExpressGateway — make run (serve the embedded default config), make test.
GO       ?= go
BIN      := bin/expressgateway
VERSION  ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS  := -X main.version=$(VERSION)
PKGS     := ./...

.PHONY: all build run test deps vet lint staticcheck unit fuzz bench bench-smoke bpf bpf-check clean
# golangci-lint is pinned in its own module file, so that its dependencies
# never move the gateway's: tools/golangci-lint.mod.
GOLANGCI := $(GO) tool -modfile=tools/golangci-lint.mod golangci-lint

all: build

build:
	@mkdir -p bin
	$(GO) build -trimpath -ldflags "$(LDFLAGS)" -o $(BIN) ./cmd/expressgateway

## run: the gateway on the embedded default config; then: curl http://127.0.0.1:8080/
run: build
	./$(BIN) run

## test: vet, lint, BPF freshness, and the race-enabled test suite.
test: deps vet lint bpf-check unit

## deps: install the suite's system packages when missing (apt, as root).
deps:
	@.ci/deps.sh

vet:
	$(GO) vet $(PKGS)

## lint: golangci-lint (.golangci.yml): errcheck, forbidigo (no panic, log.Fatal
## or os.Exit outside cmd/ and tests), govet, staticcheck and unused.
lint:
	$(GOLANGCI) run $(PKGS)

## staticcheck: staticcheck alone (lint runs the same checks).
staticcheck:
	$(GO) tool staticcheck $(PKGS)

unit: build
	$(GO) test -race -count=1 -timeout 25m $(PKGS)

## fuzz: run each fuzz target briefly (FUZZTIME=30s by default).
FUZZTIME ?= 30s
fuzz:
	$(GO) test ./codecs/h1 -run '^$$' -fuzz '^FuzzRequestParser$$' -fuzztime $(FUZZTIME)
	$(GO) test ./codecs/h1 -run '^$$' -fuzz '^FuzzResponseParser$$' -fuzztime $(FUZZTIME)
	$(GO) test ./codecs/h1 -run '^$$' -fuzz '^FuzzBodyDecoder$$' -fuzztime $(FUZZTIME)
	$(GO) test ./codecs/msg -run '^$$' -fuzz '^FuzzNormalizeTarget$$' -fuzztime $(FUZZTIME)
	$(GO) test ./codecs/msg -run '^$$' -fuzz '^FuzzNormalizeHost$$' -fuzztime $(FUZZTIME)
	$(GO) test ./codecs/proxyproto -run '^$$' -fuzz '^FuzzParse$$' -fuzztime $(FUZZTIME)
	$(GO) test ./codecs/quicinv -run '^$$' -fuzz '^FuzzParse$$' -fuzztime $(FUZZTIME)
	$(GO) test ./codecs/h3 -run '^$$' -fuzz '^FuzzFieldLines$$' -fuzztime $(FUZZTIME)
	$(GO) test ./codecs/h3 -run '^$$' -fuzz '^FuzzHuffman$$' -fuzztime $(FUZZTIME)

## bench: Go benchmarks, then the load harness: every scenario, every target, 3 rounds.
bench: build
	$(GO) test -run '^$$' -bench . -benchmem ./codecs/... ./lb/... ./stages/...
	$(GO) run ./bench -gateway-bin $(BIN) -rounds 3 $(BENCHFLAGS)

## bench-smoke: CI: h1-keepalive 3 s, expressgateway vs HAProxy; fails only on errors, non-2xx or a target that did not start.
bench-smoke: build
	$(GO) run ./bench -smoke -gateway-bin $(BIN)

## bpf: regenerate the BPF objects and their Go bindings.
bpf:
	$(GO) generate ./xdp/...

bpf-check:
	@if [ -x bpf/check-fresh.sh ]; then bpf/check-fresh.sh; else echo "bpf-check: no BPF program yet"; fi

clean:
	rm -rf bin
