# make build   - static binaries (CGO off) with the version stamped, in bin/
# make install - binaries, man pages (make man first), systemd unit, sysusers file, example config
#                under DESTDIR/PREFIX (default /usr/local; config in /etc/ferry unless it exists)
# make docs    - docs/api.md, the API reference, from the .proto comments (checked by make test)
# make demo  - build, run two agents and copy a 100 MB file between them (the README quick start)
# make test  - everything CI runs: lint, generated-code check, all tests
# make fuzz  - each fuzz target for FUZZTIME (default 5s), one at a time
BUF     := go run github.com/bufbuild/buf/cmd/buf@v1.75.0
STATICCHECK := go run honnef.co/go/tools/cmd/staticcheck@v0.7.0
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -s -w -X github.com/ferry-dev/ferry/agent/daemon.Version=$(VERSION)
PREFIX  ?= /usr/local
BINDIR  ?= $(PREFIX)/bin
MANDIR  ?= $(PREFIX)/share/man
UNITDIR ?= $(PREFIX)/lib/systemd/system
SYSUSERSDIR ?= $(PREFIX)/lib/sysusers.d
SYSCONFDIR  ?= /etc

.PHONY: build install docs check-docs demo test unit lint generate check-generated bench bench-wan bench-fleet fuzz clean man

# Static binaries: no cgo (pure-Go DNS resolver and user lookups), no build paths, version stamped.
build:
	CGO_ENABLED=0 go build -trimpath -ldflags "$(LDFLAGS)" -o bin/ferry-agent ./agent/cmd/ferry-agent
	CGO_ENABLED=0 go build -trimpath -ldflags "$(LDFLAGS) -X main.version=$(VERSION)" -o bin/ferryctl ./ctl/cmd/ferryctl

# The unit's ExecStart names $(BINDIR); the example config is installed only where none exists;
# man pages are installed when make man made them.
install: build
	install -d $(DESTDIR)$(BINDIR) $(DESTDIR)$(UNITDIR) $(DESTDIR)$(SYSUSERSDIR) $(DESTDIR)$(SYSCONFDIR)/ferry
	install -m 0755 bin/ferry-agent bin/ferryctl $(DESTDIR)$(BINDIR)/
	sed 's|/usr/local/bin/ferry-agent|$(BINDIR)/ferry-agent|; s|/etc/ferry/|$(SYSCONFDIR)/ferry/|g' dist/ferry-agent.service > $(DESTDIR)$(UNITDIR)/ferry-agent.service
	chmod 0644 $(DESTDIR)$(UNITDIR)/ferry-agent.service
	install -m 0644 dist/ferry-agent.sysusers $(DESTDIR)$(SYSUSERSDIR)/ferry-agent.conf
	test -e $(DESTDIR)$(SYSCONFDIR)/ferry/agent.yaml || install -m 0640 dist/ferry-agent.yaml $(DESTDIR)$(SYSCONFDIR)/ferry/agent.yaml
	@if ls man/man1/*.1 >/dev/null 2>&1; then install -d $(DESTDIR)$(MANDIR)/man1 && install -m 0644 man/man1/*.1 $(DESTDIR)$(MANDIR)/man1/; fi

# The API reference, generated from the comments of proto/ferry/v1/agent.proto by internal/apidoc,
# a protoc plugin buf runs (buf.docs.gen.yaml).
docs:
	$(BUF) generate --template buf.docs.gen.yaml --path proto/ferry/v1

check-docs: docs
	@test -z "$$(git status --porcelain -- docs/api.md)" || { git status --porcelain -- docs/api.md; echo "docs/api.md is stale: run make docs"; exit 1; }

demo: build
	BIN=bin ./docs/demo.sh

test: lint check-generated check-docs unit

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

# Loopback benchmark (internal/bench/loopback): a 1 GiB file and 10,000 4 KiB files moved by a raw
# socket copy (the ceiling: sendfile, the faster of two receivers), vsftpd + curl, lftp (pget -n 8,
# mirror --parallel=4) and two ferry-agent processes, with SHA-256 in memory on one core and the
# bound it puts on a verified copy, printed as one table with ratios, each agent's peak RSS and
# CPU s/GiB. Needs root, vsftpd, curl and lftp (see .ci/run). FERRY_BENCH_REPEAT=3 runs every case
# in three interleaved rounds and keeps its best (the median is printed too); FERRY_BENCH_SIZE=256M,
# FERRY_BENCH_FILES=0, FERRY_BENCH_DIR=/path (default /dev/shm) adjust it. See docs/performance.md.
bench:
	@out=$$(go test -run '^$$' -bench '^BenchmarkLoopback$$' -benchtime 1x -timeout 60m ./internal/bench/loopback/ 2>&1); rc=$$?; \
	  echo "$$out" | grep -v -e '^goos:' -e '^goarch:' -e '^pkg:' -e '^cpu:' -e '^BenchmarkLoopback' -e '^PASS' -e '^ok'; exit $$rc

# Over a WAN link in Go (internal/testbed WANLink, two network namespaces, both defaulting to
# CUBIC): raw TCP (CUBIC, and BBR: the ceiling), vsftpd with curl and lftp, and Ferry agent to
# agent (default flags, and --tcp-congestion cubic); 64 MiB at 100 ms RTT, 0.1% loss, 200 Mbit/s
# both ways, and 500 files of 4 KiB at 50 ms; one table from one run. FERRY_BENCH_CASES=download,
# upload, files (default: all three), streams, link select parts. Needs root, vsftpd, curl and
# lftp; takes about 15 minutes (the single-stream CUBIC rows take about 100 s each). CI builds it, never runs it. See docs/performance.md.
bench-wan:
	go test -run '^$$' -bench '^BenchmarkWAN$$' -benchtime 1x -count 1 -timeout 40m ./internal/bench/wan/

# Fleet fan-out: a 200 MiB file from one agent to N = 5, 10, 20, 40 agents on loopback, direct
# and tree, wall time and the source's egress (nftables counter: needs root) for both; then the
# 20-agent figure run. Override with FLEET_N=5,10 FLEET_MIB=50.
FLEET_N   ?= 5,10,20,40
FLEET_MIB ?= 200
bench-fleet:
	go test -count=1 -timeout 90m -v -run '^TestFleetBench$$' ./internal/fleettest/ -args -fleet.bench -fleet.bench.n $(FLEET_N) -fleet.bench.mib $(FLEET_MIB) | grep -vE '^(=== |--- |\s+\S+\.go:[0-9]+:)'
	go test -count=1 -timeout 30m -v -run '^TestFleetFanOut$$' ./internal/fleettest/ -args -fleet.mib $(FLEET_MIB) -fleet.agents 20 | grep -E 'agents,|wall|PASS|FAIL|ok'

# Fuzzing: every target runs for FUZZTIME, one at a time (each uses all cores). Their seed
# corpora (f.Add and testdata/fuzz/<Target>/) also run in every go test. A run that fails
# without writing a failing input and only says "context deadline exceeded" is the -fuzztime
# race of Go's fuzz coordinator (golang/go#75804, fixed in Go 1.27), not a finding.
FUZZTIME ?= 5s
FUZZ_TARGETS := \
	./agent/transfer:FuzzParseEndpoint ./agent/transfer:FuzzEndpointSecret \
	./agent/transfer:FuzzCleanLocal ./agent/transfer:FuzzRedact \
	./agent/storage:FuzzPartName \
	./agent/ftpserver:FuzzRelPath ./agent/ftpserver:FuzzInScope \
	./agent/ftpclient:FuzzReadReply ./agent/ftpclient:FuzzParseCodeLine \
	./agent/ftpclient:FuzzParsePASV ./agent/ftpclient:FuzzParseEPSV \
	./agent/ftpclient:FuzzParseMLSx ./agent/ftpclient:FuzzParseLIST \
	./agent/ftpclient:FuzzParseHash ./agent/ftpclient:FuzzParsePWD \
	./agent/server:FuzzStartTransfer ./agent/server:FuzzGrantAccess ./agent/server:FuzzReverseTransfer

fuzz:
	@for t in $(FUZZ_TARGETS); do \
	  pkg=$${t%%:*}; name=$${t##*:}; \
	  if out=$$(go test -run '^$$' -fuzz "^$$name\$$" -fuzztime $(FUZZTIME) $$pkg 2>&1); then \
	    printf '%-22s %-18s %s\n' "$$name" "$$pkg" "$$(echo "$$out" | grep '^fuzz: elapsed' | tail -1)"; \
	  elif ! echo "$$out" | grep -q 'Failing input written' && echo "$$out" | grep -qx '    context deadline exceeded'; then \
	    printf '%-22s %-18s %s (golang/go#75804 at the deadline, not a finding)\n' "$$name" "$$pkg" \
	      "$$(echo "$$out" | grep '^fuzz: elapsed' | tail -1)"; \
	  else \
	    echo "$$out" | grep -v '^fuzz: elapsed'; echo "make fuzz: $$name failed"; exit 1; \
	  fi; \
	done

clean:
	rm -rf bin

# Man pages of ferryctl, generated from its commands (cobra/doc) into man/man1; not committed
# (a test generates them, so a command that breaks generation fails CI). man -l man/man1/ferryctl.1
man:
	rm -rf man && mkdir -p man/man1
	go run -ldflags "-X main.version=$(VERSION)" ./ctl/cmd/ferryctl __man man/man1
