package ftpserver

import (
	"net"
	"syscall"
)

const canRebindPassive = true

// stopListening takes tl out of the LISTEN state without closing its descriptor: on Linux,
// shutdown(2) of a listening socket drops its queue and stops it accepting, while the socket
// stays bound with SO_REUSEADDR, which then lets another socket bind the same port on one
// address.
func stopListening(tl *net.TCPListener) error {
	rc, err := tl.SyscallConn()
	if err != nil {
		return err
	}
	var serr error
	if err := rc.Control(func(fd uintptr) { serr = syscall.Shutdown(int(fd), syscall.SHUT_RD) }); err != nil {
		return err
	}
	return serr
}
