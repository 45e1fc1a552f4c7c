//go:build linux && !amd64 && !386

package testbed

import "syscall"

const sysSetns = syscall.SYS_SETNS
