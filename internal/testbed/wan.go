package testbed

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"
)

const wanIface = "wan0" // the TUN device of a WAN link, in both namespaces

// WANOpts describes a wide-area link. The zero value is a link with no delay, no loss and no rate
// limit (as fast as the forwarder goes).
type WANOpts struct {
	RTT      time.Duration // round-trip time: each packet is held RTT/2 in each direction
	LossPct  float64       // percent of packets dropped at random, in each direction (0–100)
	RateMbit int           // each direction is paced to this rate; ≤ 0: unlimited
	// Buffer is the bottleneck queue, as the time it takes to drain at RateMbit: a packet that
	// would wait longer is dropped (tail drop). 0 means 500 ms (the reference script's).
	Buffer time.Duration
	MTU    int // of both TUN devices; 0 means 1500
}

// WANStats counts what one direction of a WAN link did.
type WANStats struct {
	Packets  int64 // read from the sending side
	Lost     int64 // dropped at random (LossPct)
	Overflow int64 // dropped because the bottleneck buffer was full
	Bytes    int64 // delivered to the receiving side
}

// WANLink is a running user-space link between two hosts: a TUN device wan0 in each and, in the
// test process, one goroutine pair per direction that delays, drops and paces the packets.
type WANLink struct {
	A, C         *Host
	AddrA, AddrC netip.Addr

	tunA, tunC *os.File
	ab, ca     wanDir // a→c and c→a
	wg         sync.WaitGroup
	closeOnce  sync.Once
}

// Stats returns the counters of the a→c and c→a directions.
func (l *WANLink) Stats() (aToC, cToA WANStats) { return l.ab.stats(), l.ca.stats() }

// WAN joins a and c through a user-space wide-area link (see WANLink): packets held for rttMs/2
// each way, lossPct percent dropped at random, each direction paced to rateMbit (≤ 0: unlimited)
// with a half-second tail-drop buffer. It returns the two ends' addresses once the link is up.
func (b *Bed) WAN(a, c *Host, rttMs int, lossPct float64, rateMbit int) (addrA, addrC netip.Addr) {
	b.t.Helper()
	l := b.WANLink(a, c, WANOpts{RTT: time.Duration(rttMs) * time.Millisecond, LossPct: lossPct, RateMbit: rateMbit})
	return l.AddrA, l.AddrC
}

// WANLink joins a and c through a user-space wide-area link (this kernel has no netem): a TUN
// device wan0 in each host on a fresh /24 of the bed (a is .1, c is .2), and a forwarder in the
// test process. A host can have one WAN link (the device name is fixed). The link is closed by
// the bed's cleanup (closing the TUN devices deletes them), even when the test fails; if the
// process dies, the kernel deletes the devices with its file descriptors.
func (b *Bed) WANLink(a, c *Host, o WANOpts) *WANLink {
	b.t.Helper()
	if a == c {
		b.t.Fatalf("testbed: WAN from %s to itself", a)
	}
	if o.LossPct < 0 || o.LossPct > 100 || o.RTT < 0 {
		b.t.Fatalf("testbed: WAN: bad options %+v", o)
	}
	for _, h := range []*Host{a, c} {
		for _, i := range h.Ifaces() {
			if i.Name == wanIface {
				b.t.Fatalf("testbed: %s already has a WAN link (to %s)", h, i.Peer)
			}
		}
	}
	if o.Buffer <= 0 {
		o.Buffer = 500 * time.Millisecond
	}
	if o.MTU <= 0 {
		o.MTU = 1500
	}
	v4, _ := b.subnet()
	ia := Iface{Name: wanIface, Peer: c, Prefix: v4, Addr: v4.Addr().Next()}
	ic := Iface{Name: wanIface, Peer: a, Prefix: v4, Addr: ia.Addr.Next()}
	ia.PeerAddr, ic.PeerAddr = ic.Addr, ia.Addr
	l := &WANLink{A: a, C: c, AddrA: ia.Addr, AddrC: ic.Addr}

	var err error
	if l.tunA, err = a.openTUN(wanIface); err != nil {
		b.t.Fatalf("testbed: WAN: %v", err)
	}
	if l.tunC, err = c.openTUN(wanIface); err != nil {
		l.tunA.Close()
		b.t.Fatalf("testbed: WAN: %v", err)
	}
	b.mu.Lock()
	b.closers = append(b.closers, l.Close)
	b.mu.Unlock()
	// txqueuelen is also the TUN device's queue toward the forwarder, which drops what does not
	// fit: 10,000 packets (15 MB) rides out the forwarder's scheduling pauses on a loaded machine
	// (1,000 lost about 3% of a 250 Mbit/s burst before the link, loss its model does not have).
	for _, e := range []struct {
		h *Host
		i Iface
	}{{a, ia}, {c, ic}} {
		b.must(e.h.ip("addr", "add", netip.PrefixFrom(e.i.Addr, 24).String(), "dev", wanIface))
		b.must(e.h.ip("link", "set", wanIface, "mtu", fmt.Sprint(o.MTU), "txqueuelen", "10000", "up"))
	}
	a.addIface(ia)
	c.addIface(ic)
	l.ab.init(o)
	l.ca.init(o)
	l.wg.Add(4)
	go l.read(l.tunA, &l.ab)
	go l.write(&l.ab, l.tunC)
	go l.read(l.tunC, &l.ca)
	go l.write(&l.ca, l.tunA)
	return l
}

// SetOpts changes the link's delay, loss, rate and buffer for the packets that enter it from
// now on (MTU stays). Packets already in flight keep their fate.
func (l *WANLink) SetOpts(o WANOpts) {
	if o.Buffer <= 0 {
		o.Buffer = 500 * time.Millisecond
	}
	l.ab.p.Store(paramsOf(o))
	l.ca.p.Store(paramsOf(o))
}

// Close stops the forwarder and deletes both TUN devices. Safe to call more than once.
func (l *WANLink) Close() {
	l.closeOnce.Do(func() {
		l.tunA.Close()
		l.tunC.Close()
		l.wg.Wait()
	})
}

// openTUN creates a TUN device (no packet information header) inside the host and returns it,
// non-blocking, on Go's poller. The device lives as long as the file.
func (h *Host) openTUN(name string) (*os.File, error) {
	var f *os.File
	err := h.do(func() error {
		fd, err := syscall.Open("/dev/net/tun", syscall.O_RDWR|syscall.O_CLOEXEC|syscall.O_NONBLOCK, 0)
		if err != nil {
			return fmt.Errorf("open /dev/net/tun: %w", err)
		}
		var req [40]byte // struct ifreq: name[16], flags uint16
		copy(req[:15], name)
		*(*uint16)(unsafe.Pointer(&req[16])) = syscall.IFF_TUN | syscall.IFF_NO_PI
		if _, _, errno := syscall.Syscall(syscall.SYS_IOCTL, uintptr(fd), syscall.TUNSETIFF, uintptr(unsafe.Pointer(&req[0]))); errno != 0 {
			syscall.Close(fd)
			return fmt.Errorf("TUNSETIFF %s: %w", name, errno)
		}
		f = os.NewFile(uintptr(fd), "/dev/net/tun:"+name)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("on %s: %w", h, err)
	}
	return f, nil
}

// packet is one IP packet in flight, with the time it reaches the other side.
type packet struct {
	due time.Time
	buf *[]byte
	n   int
}

// wanDir is one direction of the link: the reader decides each packet's fate and due time, the
// writer delivers them in order once due.
type wanDir struct {
	p   atomic.Pointer[wanParams]
	mtu int

	q      chan packet // capacity bounds the packets in flight
	freeAt time.Time   // when the bottleneck finishes sending the last accepted packet
	pool   sync.Pool

	packets, lost, overflow, bytes atomic.Int64
}

// wanParams are the link's current delay, loss and rate (SetOpts changes them).
type wanParams struct {
	rtt    time.Duration
	loss   float64 // probability
	bps    float64 // bytes per second; 0: unlimited
	buffer time.Duration
}

func paramsOf(o WANOpts) *wanParams {
	p := &wanParams{rtt: o.RTT, loss: o.LossPct / 100, buffer: o.Buffer}
	if o.RateMbit > 0 {
		p.bps = float64(o.RateMbit) * 1e6 / 8
	}
	return p
}

func (d *wanDir) init(o WANOpts) {
	d.mtu = o.MTU
	d.p.Store(paramsOf(o))
	// Enough slots for a 1 s delay line and buffer at 1 Gbit/s in full-size packets (the most
	// the forwarder carries), and a margin for small ones.
	d.q = make(chan packet, 1<<17)
	d.pool.New = func() any { b := make([]byte, d.mtu+64); return &b }
}

func (d *wanDir) stats() WANStats {
	return WANStats{Packets: d.packets.Load(), Lost: d.lost.Load(), Overflow: d.overflow.Load(), Bytes: d.bytes.Load()}
}

// read takes packets from src until it is closed.
func (l *WANLink) read(src *os.File, d *wanDir) {
	defer l.wg.Done()
	defer close(d.q)
	rng := rand.New(rand.NewPCG(rand.Uint64(), rand.Uint64()))
	for {
		buf := d.pool.Get().(*[]byte)
		n, err := src.Read(*buf)
		if err != nil {
			d.pool.Put(buf)
			if errors.Is(err, os.ErrClosed) || errors.Is(err, syscall.EBADFD) || errors.Is(err, syscall.EBADF) {
				return
			}
			if errors.Is(err, syscall.EAGAIN) || errors.Is(err, syscall.EINTR) {
				continue
			}
			return
		}
		d.packets.Add(1)
		p := d.p.Load()
		if p.loss > 0 && rng.Float64() < p.loss {
			d.lost.Add(1)
			d.pool.Put(buf)
			continue
		}
		now := time.Now()
		sent := now
		if p.bps > 0 {
			sent = d.freeAt
			if sent.Before(now) {
				sent = now
			}
			sent = sent.Add(time.Duration(float64(n) / p.bps * float64(time.Second)))
			if sent.Sub(now) > p.buffer {
				d.overflow.Add(1)
				d.pool.Put(buf)
				continue
			}
		}
		select {
		case d.q <- packet{due: sent.Add(p.rtt / 2), buf: buf, n: n}:
			d.freeAt = sent
		default:
			d.overflow.Add(1)
			d.pool.Put(buf)
		}
	}
}

// write delivers the packets to dst in order, each once it is due (to within about 100 µs: a
// packet due sooner than that goes at once, which batches a burst into one wake-up).
func (l *WANLink) write(d *wanDir, dst *os.File) {
	defer l.wg.Done()
	const early = 100 * time.Microsecond
	for p := range d.q {
		if wait := time.Until(p.due); wait > early {
			time.Sleep(wait)
		}
		if _, err := dst.Write((*p.buf)[:p.n]); err == nil {
			d.bytes.Add(int64(p.n))
		}
		d.pool.Put(p.buf)
	}
}

// ListenPacket opens a datagram socket inside the host, from the test process itself (as Listen
// does for streams). Addresses must be IP literals.
func (h *Host) ListenPacket(ctx context.Context, network, address string) (net.PacketConn, error) {
	if err := literal(network, address); err != nil {
		return nil, err
	}
	var pc net.PacketConn
	err := h.do(func() error {
		var lc net.ListenConfig
		var err error
		pc, err = lc.ListenPacket(ctx, network, address)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("on %s: %w", h, err)
	}
	return pc, nil
}
