// Package testbed builds throwaway test networks out of Linux network namespaces, so tests can
// reproduce the network failures FTP really meets: a server firewall that opens only port 21, a
// client behind NAT, a server behind NAT that announces its private address in PASV replies, a
// slow or lossy wide-area link.
//
// A Bed owns a set of hosts. Each Host is a network namespace with its loopback up; Link joins
// two hosts with a veth pair on a subnet of its own (IPv4, optionally IPv6, optionally rate
// limited with tc tbf); WAN and WANLink join them through a user-space link with delay, loss, a
// rate and a bottleneck buffer (TUN devices and a forwarder in the test process, wan.go: this
// kernel has no netem). Firewall installs an nftables input filter in
// a host, Masquerade and Forward turn a host into a NAT router, and NAT wires the usual
// inside–router–outside triangle in one call. Services run as subprocesses inside a namespace
// (Exec, Start, via "ip netns exec"); Dial and Listen open sockets inside a namespace from the
// test process itself. Unix sockets on the file system are reachable from every namespace, so a
// test can drive a namespaced agent over a unix socket. There is no DNS in a bed: processes see a
// resolv.conf (from /etc/netns) that makes name lookups fail at once rather than time out.
//
// The hosts have no link to the machine's own network namespace: traffic between them never
// leaves the namespaces the bed created. t.Cleanup kills the bed's processes and deletes its
// namespaces (and with them every interface), even when the test fails or panics; a bed left
// behind by a killed test binary is swept by the next New.
//
// It needs root, iproute2 (ip, tc) and nftables (nft); WAN also needs /dev/net/tun. Require
// skips a test when they are missing, except under CI (CI or FERRY_TESTBED=require set in the
// environment), where it fails instead, so a broken runner cannot turn the network tests into
// silent skips.
//
// Bed and Host methods that take no testing.TB report setup errors with the bed's t.Fatalf and
// so must be called from the goroutine running the test that created the bed. Exec, Dial, Listen
// and the Proc methods return errors and may be called from any goroutine.
package testbed
