package testbed

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"
)

// PortRange is an inclusive range of ports; Port(21) is a range of one.
type PortRange struct{ First, Last uint16 }

// Port is the range holding only p.
func Port(p uint16) PortRange { return PortRange{p, p} }

// Ports is the range first..last, inclusive.
func Ports(first, last uint16) PortRange { return PortRange{first, last} }

// String is the nftables form: "21" or "30000-30009".
func (r PortRange) String() string {
	if r.Last <= r.First {
		return strconv.Itoa(int(r.First))
	}
	return fmt.Sprintf("%d-%d", r.First, r.Last)
}

func portSet(rs []PortRange) string {
	s := make([]string, len(rs))
	for i, r := range rs {
		s[i] = r.String()
	}
	return "{ " + strings.Join(s, ", ") + " }"
}

// Firewall is a host's inbound filter, like a server's firewall (traffic the host routes for
// others is not affected). Whatever it does not allow is
// dropped silently (so a client's connect times out rather than being refused). Always allowed:
// loopback, packets of established or related connections, and IPv6 neighbour discovery. Outbound
// traffic is never filtered. The zero value drops every new inbound connection.
type Firewall struct {
	InboundTCP []PortRange // TCP ports open to new connections
	InboundUDP []PortRange // UDP ports open
	// DropAllInbound ignores InboundTCP and InboundUDP: nothing new gets in.
	DropAllInbound bool
	// AllowPing accepts ICMP and ICMPv6 echo requests.
	AllowPing bool
	// FTPHelperPorts attaches the kernel's FTP connection-tracking helper to inbound control
	// connections on these TCP ports: the data connections it sees announced in plain-text PASV
	// and EPSV replies become "related" and pass, like behind a firewall that understands FTP.
	// (It cannot read TLS-protected control connections.)
	FTPHelperPorts []uint16
}

const fwTable = "ferry_fw"

// Firewall installs (or replaces, atomically) the host's inbound filter: an nftables table
// inet ferry_fw in its namespace.
func (h *Host) Firewall(fw Firewall) {
	h.bed.t.Helper()
	rules := ftpHelper(fw.FTPHelperPorts)
	input := []string{
		"type filter hook input priority filter; policy drop;",
		`iif "lo" accept`,
		"ct state established,related accept",
		"ct state invalid drop",
		"icmpv6 type { nd-neighbor-solicit, nd-neighbor-advert, nd-router-solicit, nd-router-advert } accept",
	}
	if fw.AllowPing {
		input = append(input, "icmp type echo-request accept", "icmpv6 type echo-request accept")
	}
	if !fw.DropAllInbound {
		if len(fw.InboundTCP) > 0 {
			input = append(input, "tcp dport "+portSet(fw.InboundTCP)+" accept")
		}
		if len(fw.InboundUDP) > 0 {
			input = append(input, "udp dport "+portSet(fw.InboundUDP)+" accept")
		}
	}
	rules = append(rules, chain("input", input))
	h.bed.must(h.nftReplace(fwTable, rules))
}

// ClearFirewall removes the host's inbound filter, if any.
func (h *Host) ClearFirewall() {
	h.bed.t.Helper()
	h.bed.must(h.nftReplace(fwTable, nil))
}

// ftpHelper declares the kernel's FTP connection-tracking helper and attaches it to new TCP
// connections to ports, as nftables table elements; none for no ports.
func ftpHelper(ports []uint16) []string {
	if len(ports) == 0 {
		return nil
	}
	ps := make([]string, len(ports))
	for i, p := range ports {
		ps[i] = strconv.Itoa(int(p))
	}
	return []string{`ct helper ftp { type "ftp" protocol tcp; }`,
		`chain helpers { type filter hook prerouting priority filter; tcp dport { ` +
			strings.Join(ps, ", ") + ` } ct helper set "ftp"; }`}
}

// chain is an nftables chain declaration, one statement a line.
func chain(name string, lines []string) string {
	return "chain " + name + " {\n\t\t" + strings.Join(lines, "\n\t\t") + "\n\t}"
}

// nftReplace replaces table inet <name> by one holding body (one chain, set or object per
// element), in one transaction; a nil body just deletes it.
func (h *Host) nftReplace(name string, body []string) error {
	var s strings.Builder
	// Creating the table first makes the delete valid whether or not it existed (nft 1.0.6 has no
	// "destroy").
	fmt.Fprintf(&s, "table inet %s\ndelete table inet %s\n", name, name)
	if body != nil {
		fmt.Fprintf(&s, "table inet %s {\n", name)
		for _, b := range body {
			fmt.Fprintf(&s, "\t%s\n", b)
		}
		s.WriteString("}\n")
	}
	_, err := runOutput(context.Background(), []byte(s.String()), "ip", "netns", "exec", h.NS, "nft", "-f", "-")
	if err != nil {
		return fmt.Errorf("on %s: %w\nruleset:\n%s", h, err, s.String())
	}
	return nil
}

// natRules is a router's NAT configuration, rendered whole into table inet ferry_nat.
type natRules struct {
	masqOut  []string // interfaces whose outgoing traffic is masqueraded
	forwards []portForward
	ftpALG   []uint16 // FTP control ports whose addresses the NAT rewrites
}

type portForward struct {
	proto  string
	ports  PortRange
	to     netip.Addr
	inside string // the router's interface toward to
}

const natTable = "ferry_nat"

// Masquerade makes the host a NAT router toward outside: IP forwarding on, traffic leaving
// through its link(s) to outside gets the router's address as source, and the router forwards
// from outside only replies and port-forwarded connections (see Forward): new connections from
// outside to the inside addresses are dropped, as by a home router. IPv4 and IPv6 alike.
func (h *Host) Masquerade(outside *Host) {
	h.bed.t.Helper()
	var names []string
	for _, i := range h.Ifaces() {
		if i.Peer == outside {
			names = append(names, i.Name)
		}
	}
	if len(names) == 0 {
		h.bed.t.Fatalf("testbed: masquerade: %s has no link to %s", h, outside)
	}
	h.mu.Lock()
	for _, n := range names {
		if !slices.Contains(h.nat.masqOut, n) {
			h.nat.masqOut = append(h.nat.masqOut, n)
		}
	}
	h.mu.Unlock()
	h.applyNAT()
}

// Forward makes the host forward proto ("tcp" or "udp") connections to any of its own addresses
// on ports to the same ports of to (an IPv4 address on one of the host's links), unless they
// arrive from to's side: a port forward (DNAT), as for a server behind NAT. The client's address
// is kept, so to must route its replies through this host (Bed.NAT sees to that). It turns IP
// forwarding on. Forwards add up.
func (h *Host) Forward(proto string, ports PortRange, to netip.Addr) {
	h.bed.t.Helper()
	if proto != "tcp" && proto != "udp" {
		h.bed.t.Fatalf("testbed: forward: protocol %q, want tcp or udp", proto)
	}
	if !to.Is4() {
		h.bed.t.Fatalf("testbed: forward: %v: only IPv4 is supported", to)
	}
	inside := ""
	for _, i := range h.Ifaces() {
		if i.Prefix.Contains(to) {
			inside = i.Name
		}
	}
	if inside == "" {
		h.bed.t.Fatalf("testbed: forward: %s has no link on %v's subnet", h, to)
	}
	h.mu.Lock()
	h.nat.forwards = append(h.nat.forwards, portForward{proto, ports, to, inside})
	h.mu.Unlock()
	h.applyNAT()
}

// FTPALG makes the host's NAT rewrite FTP as routers with an FTP "application-level gateway"
// do: on plain-text control connections to these TCP ports that it forwards, the kernel's FTP
// helper replaces the address in PORT/EPRT commands from inside, and in PASV replies from a
// forwarded server, by the router's, and lets the announced data connection through. It cannot
// read TLS-protected control connections. Calls add up.
func (h *Host) FTPALG(ports ...uint16) {
	h.bed.t.Helper()
	h.mu.Lock()
	h.nat.ftpALG = append(h.nat.ftpALG, ports...)
	h.mu.Unlock()
	h.applyNAT()
}

func (h *Host) applyNAT() {
	h.bed.t.Helper()
	h.bed.must(h.sysctl("net/ipv4/ip_forward", "1"))
	h.bed.must(h.sysctl("net/ipv6/conf/all/forwarding", "1"))
	h.mu.Lock()
	n := natRules{
		masqOut:  slices.Clone(h.nat.masqOut),
		forwards: slices.Clone(h.nat.forwards),
		ftpALG:   slices.Clone(h.nat.ftpALG),
	}
	h.mu.Unlock()

	pre := []string{"type nat hook prerouting priority dstnat;"}
	for _, f := range n.forwards {
		pre = append(pre, fmt.Sprintf(`iifname != "%s" fib daddr type local %s dport %s dnat ip to %s`,
			f.inside, f.proto, f.ports, f.to))
	}
	post := []string{"type nat hook postrouting priority srcnat;"}
	for _, o := range n.masqOut {
		post = append(post, fmt.Sprintf(`oifname "%s" masquerade`, o))
	}
	body := ftpHelper(n.ftpALG)
	body = append(body,
		chain("prerouting", pre), chain("postrouting", post))
	if len(n.masqOut) > 0 {
		outs := `{ "` + strings.Join(n.masqOut, `", "`) + `" }`
		body = append(body, chain("forward", []string{
			"type filter hook forward priority filter; policy drop;",
			"ct state established,related accept",
			"ct status dnat accept",
			"iifname != " + outs + " accept",
		}))
	}
	h.bed.must(h.nftReplace(natTable, body))
}

// NAT is an inside host reaching an outside host through a masquerading router (see Bed.NAT).
type NAT struct {
	Inside, Router, Outside *Host

	InsideAddr    netip.Addr // the inside host's private address
	RouterInside  netip.Addr // the router's address on the inside link: the inside's gateway
	RouterOutside netip.Addr // the router's public address, on the outside link
	OutsideAddr   netip.Addr // the outside host's address
}

// NAT links inside to router (router is inside's default gateway) and router to outside, and
// makes router masquerade toward outside. Outside gets no route to the inside subnet: connections
// to inside's private address fail at once there ("network unreachable"); after
// Outside.DefaultVia(RouterOutside) they time out instead, dropped by the router, which is how a
// NAT looks from the Internet. Use Forward for a server behind the NAT.
func (b *Bed) NAT(inside, router, outside *Host) *NAT {
	b.t.Helper()
	in, rin := b.Link(inside, router, LinkOpts{ADefaultViaC: true})
	rout, out := b.Link(router, outside, LinkOpts{})
	router.Masquerade(outside)
	return &NAT{Inside: inside, Router: router, Outside: outside,
		InsideAddr: in, RouterInside: rin, RouterOutside: rout, OutsideAddr: out}
}

// Forward forwards proto connections to the router's addresses on ports to the inside host.
func (n *NAT) Forward(proto string, ports PortRange) {
	n.Router.bed.t.Helper()
	n.Router.Forward(proto, ports, n.InsideAddr)
}
