// Package loopback is Ferry's loopback benchmark (`make bench`): one 1 GiB file and 10,000 4 KiB
// files moved over 127.0.0.1 by a raw socket copy (the ceiling), vsftpd with curl and with lftp,
// and two ferry-agent processes, next to SHA-256 on one core and the bound it puts on a verified
// copy, every case run FERRY_BENCH_REPEAT times (default 3) in interleaved rounds, printed as one
// table of the best runs with their medians, the ratios and each agent's peak RSS and CPU time.
// It is a Go benchmark so CI compiles it (go vet, go test) without running it; see bench_test.go
// and docs/performance.md.
package loopback
