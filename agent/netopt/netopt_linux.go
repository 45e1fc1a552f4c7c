package netopt

import (
	"strings"

	"golang.org/x/sys/unix"
)

func setCongestion(fd int, name string) error {
	return unix.SetsockoptString(fd, unix.IPPROTO_TCP, unix.TCP_CONGESTION, name)
}

func getCongestion(fd int) (string, error) {
	s, err := unix.GetsockoptString(fd, unix.IPPROTO_TCP, unix.TCP_CONGESTION)
	return strings.TrimRight(s, "\x00"), err
}

// probe tries name on a fresh TCP socket: the kernel refuses a name it does not have, and an
// unprivileged process one missing from net.ipv4.tcp_allowed_congestion_control.
func probe(name string) error {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	return setCongestion(fd, name)
}
