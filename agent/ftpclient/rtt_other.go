//go:build !linux

package ftpclient

import (
	"net"
	"time"
)

// kernelRTT is 0 where the system gives no TCP round-trip time.
func kernelRTT(net.Conn) time.Duration { return 0 }
