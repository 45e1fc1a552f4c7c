package fleettest

import "runtime"

func runtimeCPUs() int { return runtime.NumCPU() }
