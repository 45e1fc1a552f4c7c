# make demo  - build, run two agents and copy a 100 MB file between them (the README quick start)
# make test  - everything CI runs: lint, generated-code check, all tests
BUF     := go run github.com/bufbuild/buf/cmd/buf@v1.75.0
STATICCHECK := go run honnef.co/go/tools/cmd/staticcheck@v0.7.0
VERSION ?= $(shell git describe --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -X github.com/ferry-dev/ferry/agent/daemon.Version=$(VERSION)

.PHONY: build demo test unit lint generate check-generated bench clean

build:
	go build -ldflags "$(LDFLAGS)" -o bin/ferry-agent ./agent
	go build -ldflags "$(LDFLAGS)" -o bin/ferryctl ./ctl

demo: build
	BIN=bin ./docs/demo.sh

test: lint check-generated unit

unit:
	go test -race -count=1 -timeout 15m ./...

lint:
	@out=$$(gofmt -l $$(git ls-files '*.go' | grep -v '\.pb\.go$$')); \
	  if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	go vet ./...
	$(STATICCHECK) ./...
	$(BUF) lint

generate:
	$(BUF) generate

# Regenerating must change nothing: the committed code is what buf makes from the .proto files.
check-generated: generate
	@test -z "$$(git status --porcelain -- proto)" || { git status --porcelain -- proto; echo "generated code is stale: run make generate"; exit 1; }

# Loopback throughput of one 256 MiB file: raw TCP, vsftpd+curl and agent-to-agent, measured in
# the same run, printed with the ratio of each to raw TCP. Needs vsftpd and curl (see .ci/run).
bench:
	go test -run '^$$' -bench Copy -benchtime 3x -count 1 ./agent/server/ | awk '\
	  /^BenchmarkCopy\// { name=$$1; sub(/^BenchmarkCopy\//, "", name); sub(/-[0-9]+$$/, "", name); \
	    mbs[name]=$$5; order[++n]=name } \
	  END { printf "%-16s %10s %8s\n", "path", "MB/s", "vs raw"; \
	    for (i=1; i<=n; i++) printf "%-16s %10.1f %8.2f\n", order[i], mbs[order[i]], mbs[order[i]]/mbs["raw-tcp"] }'

clean:
	rm -rf bin
