package testbed

import (
	"context"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
	"time"
)

// LinkOpts configures Link. The zero value is a plain IPv4 veth link without routes.
type LinkOpts struct {
	IPv6         bool // also give both ends a ULA address on fd00:…/64 (no DAD: usable at once)
	RateMbit     int  // if > 0, a tc tbf on both ends limits each direction to this rate
	ADefaultViaC bool // make c the default IPv4 (and IPv6, with IPv6) gateway of a
	CDefaultViaA bool // make a the default gateway of c
}

// Link joins a and c with a veth pair on a fresh subnet of the bed (10.<bed>.<n>.0/24: a is .1,
// c is .2; with IPv6 also fd00:<bed>:<n>::/64, ::1 and ::2) and returns their IPv4 addresses. The
// interfaces are created directly inside the two namespaces (named eth0, eth1, … in each), so
// nothing ever appears in the machine's own namespace. Host.Iface gives the details.
func (b *Bed) Link(a, c *Host, opts LinkOpts) (addrA, addrC netip.Addr) {
	b.t.Helper()
	if a == c {
		b.t.Fatalf("testbed: link %s to itself", a)
	}
	v4, v6 := b.subnet()
	ia := Iface{Name: a.nextIfaceName(), Peer: c, Prefix: v4, Addr: v4.Addr().Next()}
	ic := Iface{Name: c.nextIfaceName(), Peer: a, Prefix: v4, Addr: ia.Addr.Next()}
	ia.PeerAddr, ic.PeerAddr = ic.Addr, ia.Addr
	if opts.IPv6 {
		ia.Prefix6, ia.Addr6 = v6, v6.Addr().Next()
		ic.Prefix6, ic.Addr6 = v6, ia.Addr6.Next()
		ia.PeerAddr6, ic.PeerAddr6 = ic.Addr6, ia.Addr6
	}

	b.must(a.ip("link", "add", ia.Name, "type", "veth", "peer", "name", ic.Name, "netns", c.NS))
	a.addIface(ia)
	c.addIface(ic)
	for _, e := range []struct {
		h *Host
		i Iface
	}{{a, ia}, {c, ic}} {
		h, i := e.h, e.i
		b.must(h.ip("addr", "add", netip.PrefixFrom(i.Addr, 24).String(), "dev", i.Name))
		if opts.IPv6 {
			b.must(h.ip("addr", "add", netip.PrefixFrom(i.Addr6, 64).String(), "dev", i.Name, "nodad"))
		}
		if opts.RateMbit > 0 {
			b.must(h.tbf(i.Name, opts.RateMbit))
		}
		b.must(h.ip("link", "set", i.Name, "up"))
	}
	if opts.IPv6 {
		b.must(a.waitNoTentative())
		b.must(c.waitNoTentative())
	}
	for _, r := range []struct {
		on  bool
		h   *Host
		via Iface
	}{{opts.ADefaultViaC, a, ia}, {opts.CDefaultViaA, c, ic}} {
		if r.on {
			r.h.DefaultVia(r.via.PeerAddr)
			if opts.IPv6 {
				r.h.DefaultVia(r.via.PeerAddr6)
			}
		}
	}
	return ia.Addr, ic.Addr
}

// tbf limits what leaves dev to rateMbit. The bucket holds 4 ms at that rate (at least 16 kB),
// the queue 50 ms.
func (h *Host) tbf(dev string, rateMbit int) error {
	burst := max(rateMbit*1_000_000/8/250, 16_000)
	return run(context.Background(), nil, "tc", "-n", h.NS, "qdisc", "replace", "dev", dev, "root", "tbf",
		"rate", strconv.Itoa(rateMbit)+"mbit", "burst", strconv.Itoa(burst), "latency", "50ms")
}

// waitNoTentative waits (at most 5 s) until no IPv6 address of the host is still tentative.
func (h *Host) waitNoTentative() error {
	deadline := time.Now().Add(5 * time.Second)
	for {
		out, err := output(context.Background(), "ip", "-n", h.NS, "-6", "addr", "show", "tentative")
		if err != nil {
			return err
		}
		if len(strings.TrimSpace(string(out))) == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("on %s: IPv6 addresses still tentative after 5 s:\n%s", h, out)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
