package ftpserver

import (
	"fmt"
	"strconv"
	"strings"
)

// refuseDataPort returns the reply refusing a PORT or EPRT whose port is below 1024, or "" to
// let the library handle the command (it also refuses an address other than the client's: 501,
// FTP bounce). A privileged port on the client's own address is a bounce too: the server would
// connect to the client host's SMTP, SSH or similar service and send it whatever data the
// attacker had uploaded. Malformed arguments are left to the library's 501.
func refuseDataPort(verb, param string) string {
	var port int
	switch verb {
	case "PORT":
		f := strings.Split(strings.TrimSpace(param), ",")
		if len(f) != 6 {
			return ""
		}
		hi, err1 := strconv.Atoi(strings.TrimSpace(f[4]))
		lo, err2 := strconv.Atoi(strings.TrimSpace(f[5]))
		if err1 != nil || err2 != nil || hi < 0 || hi > 255 || lo < 0 || lo > 255 {
			return ""
		}
		port = hi<<8 | lo
	case "EPRT":
		// RFC 2428: <d><net-prt><d><net-addr><d><tcp-port><d>, d any printable delimiter.
		p := strings.TrimSpace(param)
		if len(p) < 2 {
			return ""
		}
		f := strings.Split(p[1:], p[:1])
		if len(f) != 4 {
			return ""
		}
		n, err := strconv.Atoi(f[2])
		if err != nil || n < 0 || n > 65535 {
			return ""
		}
		port = n
	default:
		return ""
	}
	if port >= 1024 {
		return ""
	}
	return fmt.Sprintf("501 %s to port %d refused: data connections to ports below 1024 are not allowed.", verb, port)
}
