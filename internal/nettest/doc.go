// Package nettest holds Ferry's network matrix: real ferry-agent and ferryctl binaries and real
// vsftpd servers run inside the network namespaces of internal/testbed, behind nftables firewalls
// and NAT routers, and the tests assert what Ferry does in each case of docs/networks.md: which
// data-connection mode works, how fast a blocked one fails and with which cause and fix, what
// auto mode chooses (including reversing the direction between agents), and what
// `ferryctl doctor` recommends.
//
// The package has only tests. They need root, iproute2, nftables, vsftpd and curl (CI has them);
// elsewhere they skip, as internal/testbed does.
package nettest
