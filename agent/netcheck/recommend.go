package netcheck

import (
	"errors"
	"fmt"
	"net"
	"strings"

	"github.com/ferry-dev/ferry/agent/ftpclient"
)

// recommend turns a report into plain words and a mode.
func recommend(r *Report) (string, Mode) {
	if r.controlErr != nil {
		return controlAdvice(r), ModeNone
	}
	var parts []string
	mode := ModeNone
	switch {
	case r.Passive && r.Active:
		mode = ModePassive
		parts = append(parts, "Both passive and active mode work; use either (auto picks passive).")
	case r.Passive:
		mode = ModePassive
		parts = append(parts, "Use passive mode (auto does): "+activeProblem(r)+".")
	case r.Active:
		mode = ModeActive
		parts = append(parts, fmt.Sprintf("Open %s on the server's firewall, or use active mode (auto falls back to it).", passiveRange(r)))
	default:
		parts = append(parts, fmt.Sprintf("No data connection works from this agent: open %s on the server's firewall (best), "+
			"or let the server connect back to this agent for active mode (%s). Between two agents, --mode auto also tries the "+
			"other direction (the peer connects to this agent's FTP server).", passiveRange(r), activeFix(r)))
	}
	if r.announced.IsValid() {
		parts = append(parts, fmt.Sprintf("The server announces its private address %s in PASV replies but is reached at %s: "+
			"set its public address (ferry-agent --public-host %s, or --public-host-for CIDR=HOST per client network; "+
			"vsftpd pasv_address=%s) so that other FTP clients work too; Ferry's client already uses the control address.",
			r.announced.Addr(), r.controlIP, r.controlIP, r.controlIP))
	}
	return strings.Join(parts, " "), mode
}

func passiveRange(r *Report) string {
	switch {
	case r.passiveRange != "":
		return "TCP " + r.passiveRange
	case r.passivePort != "":
		return fmt.Sprintf("the server's passive port range (it announced port %s)", r.passivePort)
	}
	return "the server's passive port range"
}

func activeProblem(r *Report) string {
	switch r.activeWhy {
	case "refused":
		return fmt.Sprintf("active mode fails because the server refuses to connect back to %s, an address it does not see this agent at (this agent is behind NAT)", r.activeAddr)
	case "timeout":
		return fmt.Sprintf("active mode fails because the server's connection back to %s is blocked (a firewall or NAT in front of this agent)", r.activeAddr)
	}
	return "active mode fails"
}

func activeFix(r *Report) string {
	if r.activeWhy == "refused" {
		return "announce the NAT's public address with --active-addr and forward --active-ports to this agent"
	}
	return "open or forward --active-ports to this agent, with --active-addr if it is behind NAT"
}

func controlAdvice(r *Report) string {
	err := r.controlErr
	var re *ftpclient.ReplyError
	if errors.As(err, &re) && (re.Code == 530 || re.Code == 532) {
		return "The server refused the login: check the user and password."
	}
	port := ""
	if _, p, e := net.SplitHostPort(r.Addr); e == nil {
		port = "TCP " + p
	}
	var ne net.Error
	switch {
	case r.Addr == "":
		return "Could not get a login for the server: " + oneLine(err.Error()) + "."
	case errors.As(err, &ne) && ne.Timeout():
		return fmt.Sprintf("The FTP control port %s does not answer (dropped): open %s on the server's firewall, or check the address.", r.Addr, port)
	case strings.Contains(err.Error(), "refused"):
		return fmt.Sprintf("Nothing listens on %s (connection refused): check the address and port, and that the server runs.", r.Addr)
	}
	return fmt.Sprintf("Cannot use the FTP control connection to %s: %s.", r.Addr, oneLine(err.Error()))
}
