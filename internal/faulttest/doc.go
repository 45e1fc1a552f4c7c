// Package faulttest holds Ferry's fault tests (issue 14, "Done when"): real ferry-agent and
// ferryctl binaries, built once per test binary, run as processes inside the network namespaces
// of internal/testbed, next to real vsftpd servers and a few deliberately hostile FTP servers
// written in the tests. Each test injects one fault — a kill -9 of the receiving or the sending
// agent, a link cut for 10 s or 90 s in either direction, a data connection that goes silent, a
// server restarted mid-transfer, a full disk, two writers for one destination, a hostile server —
// and asserts that the transfer ends as the issue says: with the source's SHA-256 under the final
// name, and with nothing but the whole file ever standing there (a poller watches the final path
// during the transfer). Each test logs the figures of the closing note: bytes re-sent
// after a resume against the file size, time to detect the fault, attempts; TestMain prints them
// all at the end.
//
// The package has only tests. They need root, iproute2, nftables and vsftpd (CI has them);
// elsewhere they skip, unless CI or FERRY_TESTBED=require is set, where they fail instead.
package faulttest
