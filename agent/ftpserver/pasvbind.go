package ftpserver

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"time"
)

// dataConnTimeout bounds the wait for a data connection (ftpserverlib's ConnectionTimeout, also
// applied by boundPassive, which the library cannot give a deadline).
const dataConnTimeout = 30 * time.Second

// WrapPassiveListener (ftpserverlib's MainDriverExtensionPassiveWrapper) sets the congestion
// control (Config.TCPCongestion) of accepted passive data connections and makes passive data
// listeners bind the control listener's address when that is a specific IP (Config.Listen
// "127.0.0.1:2121"); ftpserverlib binds every interface. With an unspecified address (":2121")
// the library's listener is kept, as it is on systems other than Linux (see stopListening).
func (d *mainDriver) WrapPassiveListener(l net.Listener) (net.Listener, error) {
	l, err := d.bindPassive(l)
	if err != nil || d.s.data.congestion == "" {
		return l, err
	}
	return &congestionListener{Listener: l, name: d.s.data.congestion, log: d.s.log}, nil
}

func (d *mainDriver) bindPassive(l net.Listener) (net.Listener, error) {
	ip := d.s.pasvIP
	if !ip.IsValid() || !canRebindPassive {
		return l, nil
	}
	tl, ok := l.(*net.TCPListener)
	if !ok {
		return l, nil
	}
	bl, err := rebindPassive(tl, ip, !d.s.cfg.PassivePorts.isZero())
	if err != nil {
		_ = tl.Close()
		d.s.log.Warn("ftp passive listener: cannot bind the control address", "ip", ip.String(), "err", err)
		return nil, fmt.Errorf("cannot bind %s", ip)
	}
	return bl, nil
}

// boundPassive is a passive listener bound to one address. orig is the library's listener on
// every interface, no longer listening (see rebindPassive) but kept open because the library
// sets its accept deadline on it; Accept applies dataConnTimeout itself.
type boundPassive struct {
	*net.TCPListener
	orig *net.TCPListener
}

func (b *boundPassive) Accept() (net.Conn, error) {
	_ = b.TCPListener.SetDeadline(time.Now().Add(dataConnTimeout))
	return b.TCPListener.Accept()
}

func (b *boundPassive) Close() error {
	return errors.Join(b.TCPListener.Close(), ignoreClosed(b.orig.Close()))
}

func ignoreClosed(err error) error {
	if errors.Is(err, net.ErrClosed) {
		return nil
	}
	return err
}

// rebindPassive moves the port of tl (listening on every interface) to ip alone. keepPort:
// the port was chosen from Config.PassivePorts and already announced, so it must stay; else any
// port will do should the same one be taken in the meantime.
func rebindPassive(tl *net.TCPListener, ip netip.Addr, keepPort bool) (*boundPassive, error) {
	port := tl.Addr().(*net.TCPAddr).Port
	if err := stopListening(tl); err != nil {
		return nil, err
	}
	nl, err := net.ListenTCP("tcp", net.TCPAddrFromAddrPort(netip.AddrPortFrom(ip, uint16(port))))
	if err != nil && !keepPort {
		nl, err = net.ListenTCP("tcp", net.TCPAddrFromAddrPort(netip.AddrPortFrom(ip, 0)))
	}
	if err != nil {
		return nil, err
	}
	return &boundPassive{TCPListener: nl, orig: tl}, nil
}
