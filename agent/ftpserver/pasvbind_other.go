//go:build !linux

package ftpserver

import (
	"errors"
	"net"
)

// canRebindPassive: only Linux can take a listening socket out of LISTEN while keeping it (see
// pasvbind_linux.go); elsewhere passive listeners keep ftpserverlib's binding to every interface.
const canRebindPassive = false

func stopListening(*net.TCPListener) error {
	return errors.New("rebinding a passive listener is supported on Linux only")
}
