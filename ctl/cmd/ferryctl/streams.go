package main

import "github.com/spf13/cobra"

// addStreamsFlag adds copy's --streams: parallel streams for one large file.
func addStreamsFlag(cmd *cobra.Command) {
	cmd.Flags().Int("streams", 0, "parallel streams for one large file: it moves as `N` byte ranges over N FTP"+`
sessions at once (downloads from any server with REST; uploads to Ferry agents), then its
SHA-256 is checked whole. 0 (default) picks from the file's size and the round-trip time:
1 under 16 MiB or on a LAN, up to 8 on long links. At most 16. Trees ignore it.
Example: ferryctl copy agent://10.0.0.7:7070/big.iso in/ --streams 8`)
}

// streamsOf is the value of --streams (the agent checks its range: "streams: ...").
func streamsOf(cmd *cobra.Command) int32 {
	n, _ := cmd.Flags().GetInt("streams")
	return int32(min(max(n, -1), 1<<20)) // out of range either way: the agent says so
}
