package transfer

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"sync"
)

// ErrPolicy is the kind of an outbound connection the agent's policy (--allow-remote) refuses.
// It is permanent (never retried) and the API answers it with PermissionDenied.
var ErrPolicy = errors.New("refused by the outbound policy")

// linkLocal are the networks refused unless a rule inside them allows them explicitly: cloud
// metadata services (169.254.169.254, fd00:ec2::254 aside) live there.
var linkLocal = []netip.Prefix{netip.MustParsePrefix("169.254.0.0/16"), netip.MustParsePrefix("fe80::/10")}

// Policy decides which remote addresses this agent may connect to: FTP control connections
// (ftp:// URLs and the address a peer's grant names), peer agents' gRPC addresses and passive
// data connections. With no rules everything is allowed but link-local addresses; with rules,
// only what a rule allows. Host names are resolved and every address they resolve to must be
// allowed; connections go to the checked addresses (no second lookup).
type Policy struct {
	rules []allowRule
	// Lookup resolves a host name; nil: net.DefaultResolver.
	Lookup func(ctx context.Context, host string) ([]netip.Addr, error)
}

// allowRule is one --allow-remote value.
type allowRule struct {
	text   string
	prefix netip.Prefix // CIDR or single IP; invalid for a host rule
	host   string       // lower-case host name, or "*.suffix"
	lo, hi int          // port range; 0, 0: any port
}

// ParsePolicy parses --allow-remote values: CIDR|HOST[:PORTS] with PORTS one port ("21"), a
// range ("2121-2130") or "*"; an IPv6 address or prefix with ports goes in brackets
// ("[2001:db8::/32]:21"). HOST may start with "*." to match every name under a domain.
func ParsePolicy(specs []string) (*Policy, error) {
	p := &Policy{}
	for _, s := range specs {
		r, err := parseRule(s)
		if err != nil {
			return nil, fmt.Errorf("allow-remote %q: %w", s, err)
		}
		p.rules = append(p.rules, r)
	}
	return p, nil
}

func parseRule(s string) (allowRule, error) {
	r := allowRule{text: s}
	target, ports := strings.TrimSpace(s), ""
	switch {
	case strings.HasPrefix(target, "["):
		end := strings.Index(target, "]")
		if end < 0 {
			return r, errors.New("missing ]")
		}
		rest := target[end+1:]
		target = target[1:end]
		if rest != "" {
			var ok bool
			if ports, ok = strings.CutPrefix(rest, ":"); !ok {
				return r, errors.New("want [ADDRESS]:PORTS")
			}
		}
	case strings.Count(target, ":") == 1:
		target, ports, _ = strings.Cut(target, ":")
	}
	if target == "" {
		return r, errors.New("no network or host")
	}
	if ports != "" && ports != "*" {
		a, b, isRange := strings.Cut(ports, "-")
		lo, err1 := strconv.Atoi(a)
		hi := lo
		var err2 error
		if isRange {
			hi, err2 = strconv.Atoi(b)
		}
		if err1 != nil || err2 != nil || lo < 1 || hi > 65535 || lo > hi {
			return r, fmt.Errorf("ports %q: want PORT, LO-HI (1-65535) or *", ports)
		}
		r.lo, r.hi = lo, hi
	}
	if pfx, err := netip.ParsePrefix(target); err == nil {
		r.prefix = pfx.Masked()
		return r, nil
	}
	if ip, err := netip.ParseAddr(target); err == nil {
		r.prefix = netip.PrefixFrom(ip.Unmap(), ip.Unmap().BitLen())
		return r, nil
	}
	h := strings.TrimSuffix(strings.ToLower(target), ".")
	name := strings.TrimPrefix(h, "*.")
	if strings.Contains(target, "/") || name == "" || strings.ContainsAny(name, " *[]:") {
		return r, errors.New("want a CIDR, an IP address or a host name")
	}
	r.host = h
	return r, nil
}

func (r allowRule) portOK(port int) bool { return r.lo == 0 || (port >= r.lo && port <= r.hi) }

func (r allowRule) hostOK(host string) bool {
	if r.host == "" {
		return false
	}
	if suffix, ok := strings.CutPrefix(r.host, "*."); ok {
		return strings.HasSuffix(host, "."+suffix)
	}
	return host == r.host
}

// explicitLinkLocal: a rule that names (part of) a link-local network, not one that merely
// contains it (0.0.0.0/0 does not open the metadata service).
func (r allowRule) explicitLinkLocal(ip netip.Addr) bool {
	if !r.prefix.IsValid() || !r.prefix.Contains(ip) {
		return false
	}
	for _, ll := range linkLocal {
		if ll.Contains(r.prefix.Addr()) && r.prefix.Bits() >= ll.Bits() {
			return true
		}
	}
	return false
}

// PolicyError is an outbound connection the policy refused.
type PolicyError struct {
	Addr   string // host:port as asked
	IP     string // the refused address, when Addr names a host
	Reason string
}

func (e *PolicyError) Error() string {
	target := e.Addr
	if e.IP != "" {
		target += " (" + e.IP + ")"
	}
	return fmt.Sprintf("outbound connection to %s refused by policy (--allow-remote): %s", target, e.Reason)
}

func (e *PolicyError) Is(target error) bool { return target == ErrPolicy }

// allowed decides one resolved address of a connection to host (as given) and port.
func (p *Policy) allowed(host string, ip netip.Addr, port int) (bool, string) {
	ip = ip.Unmap().WithZone("") // a zone would make every prefix miss
	isLL := false
	for _, ll := range linkLocal {
		if ll.Contains(ip) {
			isLL = true
		}
	}
	if isLL {
		for _, r := range p.rules {
			if r.explicitLinkLocal(ip) && r.portOK(port) {
				return true, ""
			}
		}
		return false, "link-local addresses (cloud metadata services) are refused unless an --allow-remote rule names them"
	}
	if len(p.rules) == 0 {
		return true, ""
	}
	for _, r := range p.rules {
		if !r.portOK(port) {
			continue
		}
		if (r.prefix.IsValid() && r.prefix.Contains(ip)) || r.hostOK(host) {
			return true, ""
		}
	}
	return false, "no --allow-remote rule allows it"
}

// resolve checks addr (host:port) and returns the addresses to connect to, all allowed.
func (p *Policy) resolve(ctx context.Context, addr string) ([]netip.AddrPort, error) {
	host, ps, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, err
	}
	port, err := strconv.Atoi(ps)
	if err != nil || port < 0 || port > 65535 {
		return nil, fmt.Errorf("%s: bad port", addr)
	}
	var ips []netip.Addr
	name := ""
	if ip, err := netip.ParseAddr(host); err == nil {
		ips = []netip.Addr{ip}
	} else {
		name = strings.TrimSuffix(strings.ToLower(host), ".")
		lookup := p.Lookup
		if lookup == nil {
			lookup = func(ctx context.Context, h string) ([]netip.Addr, error) {
				return net.DefaultResolver.LookupNetIP(ctx, "ip", h)
			}
		}
		if ips, err = lookup(ctx, name); err != nil {
			return nil, err
		}
		if len(ips) == 0 {
			return nil, &net.DNSError{Err: "no addresses", Name: host, IsNotFound: true}
		}
	}
	out := make([]netip.AddrPort, 0, len(ips))
	for _, ip := range ips {
		if ok, why := p.allowed(name, ip, port); !ok {
			e := &PolicyError{Addr: addr, Reason: why}
			if name != "" {
				e.IP = ip.Unmap().String()
			}
			return nil, e
		}
		out = append(out, netip.AddrPortFrom(ip.Unmap(), uint16(port))) // keeps the zone of fe80::1%eth0
	}
	return out, nil
}

// Check reports whether a connection to addr (host:port) is allowed, resolving a host name.
func (p *Policy) Check(ctx context.Context, addr string) error {
	_, err := p.resolve(ctx, addr)
	return err
}

// DialContext connects to addr if the policy allows it, to the addresses it checked.
func (p *Policy) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	aps, err := p.resolve(ctx, addr)
	if err != nil {
		return nil, err
	}
	var d net.Dialer
	var first error
	for _, ap := range aps {
		c, err := d.DialContext(ctx, network, ap.String())
		if err == nil {
			return c, nil
		}
		if first == nil {
			first = err
		}
	}
	return nil, first
}

// sessionDialer is the dialer of one FTP session (ftpclient.Config.Dialer): the control
// connection is checked; data connections to the host it reached are allowed on any port (a
// server's passive ports are not in --allow-remote), others are checked.
func (p *Policy) sessionDialer() *sessionDialer { return &sessionDialer{p: p} }

type sessionDialer struct {
	p       *Policy
	mu      sync.Mutex
	control map[netip.Addr]bool
}

func (s *sessionDialer) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	if host, _, err := net.SplitHostPort(addr); err == nil {
		if ip, err := netip.ParseAddr(host); err == nil {
			s.mu.Lock()
			known := s.control[ip.Unmap()]
			s.mu.Unlock()
			if known {
				var d net.Dialer
				return d.DialContext(ctx, network, addr)
			}
		}
	}
	c, err := s.p.DialContext(ctx, network, addr)
	if err != nil {
		return nil, err
	}
	if ta, ok := c.RemoteAddr().(*net.TCPAddr); ok {
		if ip, ok := netip.AddrFromSlice(ta.IP); ok {
			s.mu.Lock()
			if s.control == nil {
				s.control = make(map[netip.Addr]bool)
			}
			s.control[ip.Unmap()] = true
			s.mu.Unlock()
		}
	}
	return c, nil
}

// policyPeers checks a peer agent's address before every call to it.
type policyPeers struct {
	Peers
	p *Policy
}

func (pp policyPeers) Grant(ctx context.Context, agentAddr, path string, write bool) (Grant, error) {
	if err := pp.p.Check(ctx, agentAddr); err != nil {
		return Grant{}, err
	}
	return pp.Peers.Grant(ctx, agentAddr, path, write)
}

func (pp policyPeers) Reverse(ctx context.Context, agentAddr string, r ReverseRequest) (Snapshot, error) {
	if err := pp.p.Check(ctx, agentAddr); err != nil {
		return Snapshot{}, err
	}
	return pp.Peers.Reverse(ctx, agentAddr, r)
}

func (pp policyPeers) Follow(ctx context.Context, agentAddr, id string, progress func(Snapshot)) error {
	if err := pp.p.Check(ctx, agentAddr); err != nil {
		return err
	}
	return pp.Peers.Follow(ctx, agentAddr, id, progress)
}
