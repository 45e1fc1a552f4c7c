package testbed

const sysSetns = 308 // the syscall package lacks SYS_SETNS on amd64
