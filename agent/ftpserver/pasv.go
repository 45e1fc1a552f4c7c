package ftpserver

import (
	"fmt"
	"net"
	"net/netip"
)

// addrIP extracts the (unmapped, zoneless) IP of a connection address.
func addrIP(a net.Addr) (netip.Addr, bool) {
	if ta, ok := a.(*net.TCPAddr); ok {
		ip, ok := netip.AddrFromSlice(ta.IP)
		return ip.Unmap().WithZone(""), ok
	}
	if a == nil {
		return netip.Addr{}, false
	}
	ap, err := netip.ParseAddrPort(a.String())
	if err != nil {
		return netip.Addr{}, false
	}
	return ap.Addr().Unmap().WithZone(""), true
}

// pasvHost picks the IPv4 address announced in a PASV reply for a client:
// the most specific override containing the client's IP (first listed wins
// a tie), else publicHost, else the local address of the control
// connection, which must then be IPv4 (IPv6 clients should use EPSV).
func pasvHost(overrides []HostOverride, publicHost string, remote, local net.Addr) (string, error) {
	if ip, ok := addrIP(remote); ok {
		best := -1
		host := ""
		for _, o := range overrides {
			if o.Network.Contains(ip) && o.Network.Bits() > best {
				best, host = o.Network.Bits(), o.Host
			}
		}
		if best >= 0 {
			return host, nil
		}
	}
	if publicHost != "" {
		return publicHost, nil
	}
	ip, ok := addrIP(local)
	if !ok || !ip.Is4() {
		return "", fmt.Errorf("no IPv4 address to announce for control connection %v (use EPSV or set PublicHost)", local)
	}
	return ip.String(), nil
}
