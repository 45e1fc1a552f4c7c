package security

import (
	"crypto/x509"
	"fmt"
	"net"
	"net/netip"
	"os"
	"strings"
)

func loadPool(file string) (*x509.CertPool, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(b) {
		return nil, fmt.Errorf("%s: no PEM certificate", file)
	}
	return pool, nil
}

// LocalOnly reports whether a gRPC listen address is reachable from this host only: a unix
// socket, or a loopback IP or "localhost".
func LocalOnly(listen string) bool {
	if strings.HasPrefix(listen, "unix://") {
		return true
	}
	host, _, err := net.SplitHostPort(listen)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip, err := netip.ParseAddr(host)
	return err == nil && ip.IsLoopback()
}
