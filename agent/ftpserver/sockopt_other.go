//go:build !unix

package ftpserver

import "net"

func setOOBInline(net.Conn) {}
