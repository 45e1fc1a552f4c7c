//go:build unix

package ftpserver

import (
	"net"
	"syscall"
)

// setOOBInline keeps TCP urgent data in the control stream. Clients send
// ABOR as urgent data (RFC 959 section 4.1.3, Python's ftplib sends the
// whole "ABOR\r\n" with MSG_OOB); without SO_OOBINLINE the kernel takes the
// last byte out of the stream and the command never ends.
func setOOBInline(c net.Conn) {
	sc, ok := c.(syscall.Conn)
	if !ok {
		return
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return
	}
	_ = rc.Control(func(fd uintptr) {
		_ = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_OOBINLINE, 1)
	})
}
