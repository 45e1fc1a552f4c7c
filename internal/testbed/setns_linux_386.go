package testbed

const sysSetns = 346 // the syscall package lacks SYS_SETNS on 386
