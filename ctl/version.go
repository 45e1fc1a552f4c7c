package main

import "runtime/debug"

// version is stamped by make build (-ldflags "-X main.version=…"); otherwise it is the module
// version Go records in the binary (go install …@v1.2.3, or a build in a git checkout), or "dev".
// `ferryctl --version` prints it.
var version = "dev"

func init() {
	if version != "dev" {
		return
	}
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		version = bi.Main.Version
	}
}
