package nettest

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ferry-dev/ferry/internal/testagent"
	"github.com/ferry-dev/ferry/internal/testbed"
	ferryv1 "github.com/ferry-dev/ferry/proto/ferry/v1"
)

// probeTimeout is the agents' --probe-timeout (the default): how long auto mode and doctor give a
// data connection before calling its path blocked.
const probeTimeout = 3 * time.Second

// serverPorts are the control ports of the two servers of a bed host, and the agent's API.
var serverPorts = []testbed.PortRange{testbed.Port(vsftpdPort), testbed.Port(agentFTP), testbed.Port(grpcPort)}

// Case 1: no firewall: both modes work against both servers, and auto picks passive.
func TestCase1NoFirewall(t *testing.T) {
	t.Parallel()
	b := newBed(t)
	cli, srv := b.Host("cli"), b.Host("srv")
	cliAddr, srvAddr := b.Link(cli, srv, testbed.LinkOpts{})
	sa, sv, sum := servers(t, srv, srvAddr, srvAddr)
	c := startAgent(t, cli, cliAddr, agentOpts{})
	up := writeFile(t, filepath.Join(c.root, "up.bin"), fileSize)

	for _, k := range kinds(sa, sv) {
		for _, m := range []ferryv1.TransferMode{passive, active, auto} {
			t.Run(k.name+"/"+modeName(m), func(t *testing.T) {
				dst := fmt.Sprintf("in/%s-%s.bin", k.name, modeName(m))
				tr, _ := run(t, c, k.url("file.bin"), dst, m)
				want := m
				if m == auto {
					want = passive
				}
				mustSucceed(t, tr, want, filepath.Join(c.root, dst), sum)
				// And the other direction (STOR) in the same mode.
				tr, _ = run(t, c, "up.bin", k.url(fmt.Sprintf("up-%s.bin", modeName(m))), m)
				mustSucceed(t, tr, want, "", "")
			})
		}
	}
	if got := fileSHA(t, sv.Local(sv.Pub+"/up-active.bin")); got != up {
		t.Errorf("vsftpd upload: sha256 %s, want %s", got, up)
	}
	if got := fileSHA(t, filepath.Join(sa.root, "pub", "up-passive.bin")); got != up {
		t.Errorf("agent upload: sha256 %s, want %s", got, up)
	}
}

// Case 2: the server's firewall opens only the control port (and the agent's API): passive fails
// within the data timeout with the cause and the fix; active works; auto falls back to active
// after the probe timeout and remembers it; doctor says what to open.
func TestCase2ServerFirewallControlOnly(t *testing.T) {
	t.Parallel()
	b := newBed(t)
	cli, srv := b.Host("cli"), b.Host("srv")
	cliAddr, srvAddr := b.Link(cli, srv, testbed.LinkOpts{})
	srv.Firewall(testbed.Firewall{InboundTCP: serverPorts})
	sa, sv, sum := servers(t, srv, srvAddr, srvAddr)
	c := startAgent(t, cli, cliAddr, agentOpts{})
	// A second client with the default data timeout (10 s), to prove the default.
	cDefault := startAgent(t, cli, cliAddr, agentOpts{grpcPort: 7071, ftpPort: 2122, passive: testbed.Ports(30020, 30029), defaultTimeout: true})

	for _, k := range kinds(sa, sv) {
		t.Run(k.name+"/passive", func(t *testing.T) {
			tr, took := run(t, c, k.url("file.bin"), "in/p.bin", passive)
			mustFail(t, tr, took, dataTimeout-100*time.Millisecond, dataTimeout+margin,
				"passive data connection", "timed out after 3s", "the data port is unreachable",
				"open the server's passive port range on its firewall, or use active mode")
		})
		t.Run(k.name+"/active", func(t *testing.T) {
			tr, _ := run(t, c, k.url("file.bin"), "in/"+k.name+"-a.bin", active)
			mustSucceed(t, tr, active, filepath.Join(c.root, "in", k.name+"-a.bin"), sum)
		})
		t.Run(k.name+"/auto", func(t *testing.T) {
			tr, took := run(t, c, k.url("file.bin"), "in/"+k.name+"-auto.bin", auto)
			mustSucceed(t, tr, active, filepath.Join(c.root, "in", k.name+"-auto.bin"), sum)
			if r := tr.GetModeReason(); !strings.Contains(r, "passive to") || !strings.Contains(r, "data port unreachable") {
				t.Errorf("auto reason %q does not say passive was blocked", r)
			}
			if took > probeTimeout+margin {
				t.Errorf("auto took %v, want at most the probe timeout %v + %v", took, probeTimeout, margin)
			}
			// The second time auto goes straight to active.
			tr, took = run(t, c, k.url("file.bin"), "in/"+k.name+"-auto2.bin", auto)
			mustSucceed(t, tr, active, "", "")
			if !strings.Contains(tr.GetModeReason(), "active mode worked with") || took > margin {
				t.Errorf("second auto transfer: reason %q after %v; want the remembered mode at once", tr.GetModeReason(), took)
			}
		})
	}
	t.Run("default-timeout", func(t *testing.T) {
		tr, took := run(t, cDefault, sv.url("file.bin"), "in/d.bin", passive)
		mustFail(t, tr, took, 10*time.Second-100*time.Millisecond, 10*time.Second+margin,
			"timed out after 10s", "the data port is unreachable")
	})
	t.Run("doctor", func(t *testing.T) {
		rs, code, took := doctor(t, cli, c.url(""), sa.url("pub/"))
		wantChecks(t, rs[0], map[string]string{"control": "OK", "passive": "FAIL", "active": "OK", "pasv-address": "OK"},
			"Open TCP 30010-30019 on the server's firewall, or use active mode")
		if code != 0 || rs[0].GetSuggestedMode() != active {
			t.Errorf("doctor: exit %d, suggested %v; want 0, ACTIVE", code, rs[0].GetSuggestedMode())
		}
		if d := check(rs[0], "passive").GetDuration().AsDuration(); d < probeTimeout-100*time.Millisecond || d > probeTimeout+margin {
			t.Errorf("passive check took %v, want about the probe timeout %v", d, probeTimeout)
		}
		if took > 4*probeTimeout {
			t.Errorf("doctor took %v", took)
		}
		rs, _, _ = doctor(t, cli, c.url(""), sv.url(""))
		wantChecks(t, rs[0], map[string]string{"passive": "FAIL", "active": "OK"},
			"Open the server's passive port range (it announced port 300", "on the server's firewall, or use active mode")
	})
}

// Case 3: the server's firewall opens the control port and the passive range: passive works (and
// active, which needs nothing from the server's firewall).
func TestCase3ServerFirewallPassiveRange(t *testing.T) {
	t.Parallel()
	b := newBed(t)
	cli, srv := b.Host("cli"), b.Host("srv")
	cliAddr, srvAddr := b.Link(cli, srv, testbed.LinkOpts{})
	srv.Firewall(testbed.Firewall{InboundTCP: append(serverPorts, agentPassive, vsftpdPassive)})
	sa, sv, sum := servers(t, srv, srvAddr, srvAddr)
	c := startAgent(t, cli, cliAddr, agentOpts{})
	for _, k := range kinds(sa, sv) {
		for _, m := range []ferryv1.TransferMode{passive, active, auto} {
			t.Run(k.name+"/"+modeName(m), func(t *testing.T) {
				dst := fmt.Sprintf("in/%s-%s.bin", k.name, modeName(m))
				tr, took := run(t, c, k.url("file.bin"), dst, m)
				want := m
				if m == auto {
					want = passive
				}
				mustSucceed(t, tr, want, filepath.Join(c.root, dst), sum)
				if took > margin {
					t.Errorf("took %v", took)
				}
			})
		}
	}
}

// Case 4a: the client's firewall drops every inbound connection: active fails within the data
// timeout (the server cannot connect back) with the cause and the fix; passive works; auto picks
// passive at once; doctor recommends passive.
func TestCase4ClientFirewall(t *testing.T) {
	t.Parallel()
	b := newBed(t)
	cli, srv := b.Host("cli"), b.Host("srv")
	cliAddr, srvAddr := b.Link(cli, srv, testbed.LinkOpts{})
	cli.Firewall(testbed.Firewall{DropAllInbound: true})
	sa, sv, sum := servers(t, srv, srvAddr, srvAddr)
	c := startAgent(t, cli, cliAddr, agentOpts{})
	for _, k := range kinds(sa, sv) {
		t.Run(k.name+"/active", func(t *testing.T) {
			tr, took := run(t, c, k.url("file.bin"), "in/a.bin", active)
			mustFail(t, tr, took, dataTimeout-100*time.Millisecond, dataTimeout+margin,
				"the server did not connect back to "+cliAddr.String(), "within 3s",
				"blocks inbound connections", "use passive mode")
		})
		for _, m := range []ferryv1.TransferMode{passive, auto} {
			t.Run(k.name+"/"+modeName(m), func(t *testing.T) {
				dst := fmt.Sprintf("in/%s-%s.bin", k.name, modeName(m))
				tr, took := run(t, c, k.url("file.bin"), dst, m)
				mustSucceed(t, tr, passive, filepath.Join(c.root, dst), sum)
				if took > margin {
					t.Errorf("took %v", took)
				}
			})
		}
	}
	t.Run("doctor", func(t *testing.T) {
		for _, target := range []string{sa.url("pub/"), sv.url("")} {
			rs, code, _ := doctor(t, cli, c.url(""), target)
			wantChecks(t, rs[0], map[string]string{"control": "OK", "passive": "OK", "active": "FAIL"},
				"Use passive mode", "connection back to "+cliAddr.String(), "is blocked")
			if code != 0 || rs[0].GetSuggestedMode() != passive {
				t.Errorf("doctor: exit %d, suggested %v; want 0, PASSIVE", code, rs[0].GetSuggestedMode())
			}
		}
	})
}

// Case 4b: the client is behind NAT: active announces its private address, which both servers
// refuse at once (a clear, fast failure); passive works; auto picks passive. With the NAT
// forwarding a port range to the client and --active-addr/--active-ports, active works.
func TestCase4ClientBehindNAT(t *testing.T) {
	t.Parallel()
	b := newBed(t)
	cli, rtr, srv := b.Host("cli"), b.Host("rtr"), b.Host("srv")
	n := b.NAT(cli, rtr, srv)
	sa, sv, sum := servers(t, srv, n.OutsideAddr, n.OutsideAddr)
	c := startAgent(t, cli, n.InsideAddr, agentOpts{})
	fwd := testbed.Ports(40000, 40009)
	n.Forward("tcp", fwd)
	cFwd := startAgent(t, cli, n.InsideAddr, agentOpts{grpcPort: 7071, ftpPort: 2122, passive: testbed.Ports(30020, 30029),
		flags: []string{"--active-addr", n.RouterOutside.String(), "--active-ports", fwd.String()}})

	for _, k := range kinds(sa, sv) {
		t.Run(k.name+"/active", func(t *testing.T) {
			tr, took := run(t, c, k.url("file.bin"), "in/a.bin", active)
			mustFail(t, tr, took, 0, margin, "the server refused to connect back to "+n.InsideAddr.String(),
				"behind NAT", "use passive mode", "--active-addr")
		})
		for _, m := range []ferryv1.TransferMode{passive, auto} {
			t.Run(k.name+"/"+modeName(m), func(t *testing.T) {
				dst := fmt.Sprintf("in/%s-%s.bin", k.name, modeName(m))
				tr, _ := run(t, c, k.url("file.bin"), dst, m)
				mustSucceed(t, tr, passive, filepath.Join(c.root, dst), sum)
			})
		}
		t.Run(k.name+"/active-port-forward", func(t *testing.T) {
			dst := "in/" + k.name + "-fwd.bin"
			tr, _ := run(t, cFwd, k.url("file.bin"), dst, active)
			mustSucceed(t, tr, active, filepath.Join(cFwd.root, dst), sum)
		})
	}
	t.Run("doctor", func(t *testing.T) {
		for _, target := range []string{sa.url("pub/"), sv.url("")} {
			rs, _, _ := doctor(t, cli, c.url(""), target)
			wantChecks(t, rs[0], map[string]string{"control": "OK", "passive": "OK", "active": "FAIL"},
				"Use passive mode", "refuses to connect back to "+n.InsideAddr.String(), "behind NAT")
			if d := check(rs[0], "active").GetDuration().AsDuration(); d > time.Second {
				t.Errorf("the refused active check took %v", d)
			}
		}
		// Behind the port forward, doctor finds both modes working.
		rs, _, _ := doctor(t, cli, cFwd.url(""), sv.url(""))
		wantChecks(t, rs[0], map[string]string{"passive": "OK", "active": "OK"}, "Both passive and active mode work")
	})
}

// Case 5: the server is behind NAT (control and passive ports forwarded) and announces its private
// address in PASV replies. Ferry's client notices and uses the control connection's address, so
// both modes work; doctor warns and says how to set the public address. An agent with
// --public-host (and --public-host-for for its own network) announces the right address to each.
func TestCase5ServerBehindNAT(t *testing.T) {
	t.Parallel()
	b := newBed(t)
	srv, rtr, cli := b.Host("srv"), b.Host("rtr"), b.Host("cli")
	n := b.NAT(srv, rtr, cli)
	for _, p := range append(serverPorts, agentPassive, vsftpdPassive) {
		n.Forward("tcp", p)
	}
	sa, sv, sum := servers(t, srv, n.InsideAddr, n.RouterOutside)
	c := startAgent(t, cli, n.OutsideAddr, agentOpts{})

	for _, k := range kinds(sa, sv) {
		for _, m := range []ferryv1.TransferMode{passive, active, auto} {
			t.Run(k.name+"/"+modeName(m), func(t *testing.T) {
				dst := fmt.Sprintf("in/%s-%s.bin", k.name, modeName(m))
				tr, _ := run(t, c, k.url("file.bin"), dst, m)
				want := m
				if m == auto {
					want = passive
				}
				mustSucceed(t, tr, want, filepath.Join(c.root, dst), sum)
			})
		}
	}
	t.Run("doctor", func(t *testing.T) {
		for _, target := range []string{sa.url("pub/"), sv.url("")} {
			rs, code, _ := doctor(t, cli, c.url(""), target)
			wantChecks(t, rs[0], map[string]string{"control": "OK", "pasv-address": "WARN", "passive": "OK", "active": "OK"},
				"announces its private address "+n.InsideAddr.String(),
				"--public-host "+n.RouterOutside.String(), "pasv_address="+n.RouterOutside.String())
			if d := check(rs[0], "pasv-address").GetDetail(); !strings.Contains(d, "reached at "+n.RouterOutside.String()) {
				t.Errorf("pasv-address detail %q", d)
			}
			if code != 0 {
				t.Errorf("doctor exit %d", code)
			}
		}
	})

	// A second agent on srv with its public address configured, and its own LAN's override.
	lan := srv.Iface(rtr).Prefix
	pub := startAgent(t, srv, n.RouterOutside, agentOpts{grpcPort: 7071, ftpPort: 2122, passive: testbed.Ports(30020, 30029),
		flags: []string{"--public-host", n.RouterOutside.String(), "--public-host-for", lan.String() + "=" + n.InsideAddr.String()}})
	for _, p := range []testbed.PortRange{testbed.Port(7071), testbed.Port(2122), testbed.Ports(30020, 30029)} {
		n.Forward("tcp", p)
	}
	writeFile(t, filepath.Join(pub.root, "pub", "x.txt"), 1000)
	t.Run("public-host", func(t *testing.T) {
		rs, _, _ := doctor(t, cli, c.url(""), pub.url("pub/"))
		wantChecks(t, rs[0], map[string]string{"pasv-address": "OK", "passive": "OK"}, "Both passive and active mode work")
		if strings.Contains(rs[0].GetRecommendation(), "private address") {
			t.Errorf("recommendation %q still complains about the PASV address", rs[0].GetRecommendation())
		}
		// A third-party client (curl, PASV only) from outside sees the public address and gets
		// the file; from the server's own network (the router's inside address) the private one.
		for _, tc := range []struct {
			from *testbed.Host
			host string
			want string
		}{{cli, n.RouterOutside.String(), n.RouterOutside.String()}, {rtr, n.InsideAddr.String(), n.InsideAddr.String()}} {
			u := fmt.Sprintf("ftp://%s:%s@%s/pub/x.txt", ftpUser, ftpPassword, net.JoinHostPort(tc.host, "2122"))
			out, err := tc.from.Exec(t.Context(), "curl", "-sS", "-v", "--disable-epsv", "--ftp-pasv", "--connect-timeout", "3", "-m", "10", "-o", "/dev/null", u)
			want := "227 Entering Passive Mode (" + strings.ReplaceAll(tc.want, ".", ",") + ","
			if err != nil || !strings.Contains(string(out), want) {
				t.Errorf("curl from %s: %v; want %q in:\n%s", tc.from, err, want, out)
			}
		}
	})
}

// Auto mode between agents also reverses when B's FTP port is closed altogether and only its API
// answers: the control connection cannot be made within the probe timeout, so A asks B to push.
func TestAutoReversesWhenFTPPortClosed(t *testing.T) {
	t.Parallel()
	b := newBed(t)
	ha, hb := b.Host("a"), b.Host("b")
	addrA, addrB := b.Link(ha, hb, testbed.LinkOpts{})
	hb.Firewall(testbed.Firewall{InboundTCP: []testbed.PortRange{testbed.Port(grpcPort)}})
	a := startAgent(t, ha, addrA, agentOpts{})
	pb := startAgent(t, hb, addrB, agentOpts{})
	sum := writeFile(t, filepath.Join(pb.root, "pub", "file.bin"), fileSize)
	tr, took := run(t, a, pb.url("pub/file.bin"), "in/closed.bin", auto)
	mustSucceed(t, tr, passive, filepath.Join(a.root, "in", "closed.bin"), sum)
	if r := tr.GetModeReason(); !tr.GetReversed() || !strings.Contains(r, "control port") || !strings.Contains(r, "reversed") {
		t.Errorf("reversed %v, reason %q", tr.GetReversed(), r)
	}
	if took > probeTimeout+margin {
		t.Errorf("auto took %v, want at most one probe timeout + %v", took, margin)
	}
}

// Auto mode between agents reverses the direction when no data connection works from the
// initiating agent: here A's firewall lets in only its FTP control and passive ports (and its
// API), B's only its FTP control port and API. From A, passive (to B's passive ports) and active
// (B connecting back to A) are blocked; B reaches A's FTP server in passive mode, so A asks B to
// run the mirrored transfer.
func TestAutoReversesBetweenAgents(t *testing.T) {
	t.Parallel()
	b := newBed(t)
	ha, hb := b.Host("a"), b.Host("b")
	addrA, addrB := b.Link(ha, hb, testbed.LinkOpts{})
	ha.Firewall(testbed.Firewall{InboundTCP: []testbed.PortRange{testbed.Port(agentFTP), agentPassive, testbed.Port(grpcPort)}})
	hb.Firewall(testbed.Firewall{InboundTCP: []testbed.PortRange{testbed.Port(agentFTP), testbed.Port(grpcPort)}})
	a := startAgent(t, ha, addrA, agentOpts{})
	pb := startAgent(t, hb, addrB, agentOpts{})
	sum := writeFile(t, filepath.Join(pb.root, "pub", "file.bin"), fileSize)
	up := writeFile(t, filepath.Join(a.root, "out", "up.bin"), fileSize)

	t.Run("passive", func(t *testing.T) {
		tr, took := run(t, a, pb.url("pub/file.bin"), "in/p.bin", passive)
		mustFail(t, tr, took, dataTimeout-100*time.Millisecond, dataTimeout+margin, "the data port is unreachable")
	})
	t.Run("active", func(t *testing.T) {
		tr, took := run(t, a, pb.url("pub/file.bin"), "in/a.bin", active)
		mustFail(t, tr, took, dataTimeout-100*time.Millisecond, dataTimeout+margin, "did not connect back")
	})
	t.Run("auto-download", func(t *testing.T) {
		tr, took := run(t, a, pb.url("pub/file.bin"), "in/", auto)
		mustSucceed(t, tr, passive, filepath.Join(a.root, "in", "file.bin"), sum)
		r := tr.GetModeReason()
		for _, w := range []string{"passive to", "data port unreachable", "active failed (no connect-back", "reversed: the peer " + pb.url("")[len("agent://"):len(pb.url(""))-1] + " pushed to this agent's FTP server in passive mode"} {
			if !strings.Contains(r, w) {
				t.Errorf("reason %q does not say %q", r, w)
			}
		}
		if !tr.GetReversed() || tr.GetPeerTransferId() == "" || !tr.GetVerified() {
			t.Errorf("reversed %v, peer transfer %q, verified %v", tr.GetReversed(), tr.GetPeerTransferId(), tr.GetVerified())
		}
		if p := tr.GetProgress(); p.GetBytesDone() != fileSize || p.GetBytesTotal() != fileSize || p.GetFilesDone() != 1 {
			t.Errorf("mirrored progress %v", p)
		}
		if took > 2*probeTimeout+margin {
			t.Errorf("auto took %v, want at most two probe timeouts + %v", took, margin)
		}
	})
	t.Run("auto-upload-remembered", func(t *testing.T) {
		tr, took := run(t, a, "out/up.bin", pb.url("got/up.bin"), auto)
		mustSucceed(t, tr, anyMode, filepath.Join(pb.root, "got", "up.bin"), up)
		if !tr.GetReversed() || !strings.Contains(tr.GetModeReason(), "reversing the direction worked with") ||
			!strings.Contains(tr.GetModeReason(), "pulled from this agent's FTP server") {
			t.Errorf("reversed %v, reason %q", tr.GetReversed(), tr.GetModeReason())
		}
		if took > margin {
			t.Errorf("remembered reverse took %v", took)
		}
	})
	t.Run("auto-tree-into-existing-dir", func(t *testing.T) {
		// A reversed tree download lands where a plain download would: into the existing "in/",
		// and a second run fills the same tree instead of nesting it inside itself.
		want := map[string]string{
			"a.bin":     writeFile(t, filepath.Join(pb.root, "pub", "tree", "a.bin"), 1000),
			"sub/b.bin": writeFile(t, filepath.Join(pb.root, "pub", "tree", "sub", "b.bin"), 2000),
		}
		for i := 0; i < 2; i++ {
			tr, _ := run(t, a, pb.url("pub/tree"), "in", auto)
			if tr.GetState() != ferryv1.TransferState_TRANSFER_STATE_SUCCEEDED || !tr.GetReversed() {
				t.Fatalf("run %d: state %v reversed %v: %s", i, tr.GetState(), tr.GetReversed(), tr.GetError())
			}
			for rel, sum := range want {
				if got := fileSHA(t, filepath.Join(a.root, "in", "tree", rel)); got != sum {
					t.Errorf("run %d: in/tree/%s sha256 %s, want %s", i, rel, got, sum)
				}
			}
			if _, err := os.Stat(filepath.Join(a.root, "in", "tree", "tree")); !os.IsNotExist(err) {
				t.Errorf("run %d: the tree was nested inside itself (in/tree/tree: %v)", i, err)
			}
		}
	})
	t.Run("doctor", func(t *testing.T) {
		rs, code, _ := doctor(t, ha, a.url(""), pb.url(""))
		if len(rs) != 2 {
			t.Fatalf("doctor between agents: %d diagnoses, want 2", len(rs))
		}
		wantChecks(t, rs[0], map[string]string{"passive": "FAIL", "active": "FAIL"}, "No data connection works", "auto also tries the other direction")
		wantChecks(t, rs[1], map[string]string{"passive": "OK"}, "Use passive mode")
		if code != 0 {
			t.Errorf("doctor exit %d, want 0 (B reaches A)", code)
		}
		out, err := ha.Exec(t.Context(), filepath.Join(binDir(t), "ferryctl"), "--token-file", testagent.TokenFile(t), "doctor", a.url(""), pb.url(""))
		t.Logf("doctor text output:\n%s", out)
		if err != nil || !strings.Contains(string(out), "CHECK") || !strings.Contains(string(out), "Between the agents: --mode auto works: "+
			net.JoinHostPort(addrB.String(), strconv.Itoa(grpcPort))+" connects to") {
			t.Errorf("doctor text: %v", err)
		}
	})
}

// IPv6: EPSV and EPRT over an IPv6 link, against both servers.
func TestIPv6(t *testing.T) {
	t.Parallel()
	b := newBed(t)
	cli, srv := b.Host("cli"), b.Host("srv")
	b.Link(cli, srv, testbed.LinkOpts{IPv6: true})
	cliAddr, srvAddr := cli.Iface(srv).Addr6, srv.Iface(cli).Addr6
	sa, sv, sum := servers(t, srv, srvAddr, srvAddr)
	c := startAgent(t, cli, cliAddr, agentOpts{})
	for _, k := range kinds(sa, sv) {
		for _, m := range []ferryv1.TransferMode{passive, active} {
			t.Run(k.name+"/"+modeName(m), func(t *testing.T) {
				dst := fmt.Sprintf("in/%s-%s.bin", k.name, modeName(m))
				tr, _ := run(t, c, k.url("file.bin"), dst, m)
				mustSucceed(t, tr, m, filepath.Join(c.root, dst), sum)
			})
		}
	}
	t.Run("doctor", func(t *testing.T) {
		for _, target := range []string{sa.url("pub/"), sv.url("")} {
			rs, _, _ := doctor(t, cli, c.url(""), target)
			wantChecks(t, rs[0], map[string]string{"control": "OK", "pasv-address": "SKIP", "passive": "OK", "active": "OK"})
			if d := check(rs[0], "passive").GetDetail(); !strings.Contains(d, "(EPSV)") || !strings.Contains(d, srvAddr.String()) {
				t.Errorf("passive over IPv6: %q, want EPSV to %s", d, srvAddr)
			}
			if d := check(rs[0], "active").GetDetail(); !strings.Contains(d, "(EPRT)") || !strings.Contains(d, cliAddr.String()) {
				t.Errorf("active over IPv6: %q, want EPRT to %s", d, cliAddr)
			}
		}
	})
}

// Cancelling a reversed transfer cancels the peer's mirrored transfer too, and nothing is left
// under the final name. The link is rate-limited so the transfer is still moving when cancelled.
func TestCancelReversed(t *testing.T) {
	t.Parallel()
	b := newBed(t)
	ha, hb := b.Host("a"), b.Host("b")
	addrA, addrB := b.Link(ha, hb, testbed.LinkOpts{RateMbit: 16})
	ha.Firewall(testbed.Firewall{InboundTCP: []testbed.PortRange{testbed.Port(agentFTP), agentPassive, testbed.Port(grpcPort)}})
	hb.Firewall(testbed.Firewall{InboundTCP: []testbed.PortRange{testbed.Port(agentFTP), testbed.Port(grpcPort)}})
	a := startAgent(t, ha, addrA, agentOpts{})
	pb := startAgent(t, hb, addrB, agentOpts{})
	writeFile(t, filepath.Join(pb.root, "pub", "slow.bin"), 16<<20) // about 8 s at 16 Mbit/s
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	resp, err := a.api.StartTransfer(ctx, &ferryv1.StartTransferRequest{Source: pb.url("pub/slow.bin"), Destination: "in/slow.bin", Mode: auto})
	if err != nil {
		t.Fatal(err)
	}
	id := resp.GetTransfer().GetId()
	stream, err := a.api.WatchTransfer(ctx, &ferryv1.WatchTransferRequest{Id: id})
	if err != nil {
		t.Fatal(err)
	}
	var peerID string
	for peerID == "" {
		m, err := stream.Recv()
		if err != nil {
			t.Fatalf("transfer ended before the reversed copy moved a byte: %v", err)
		}
		if tr := m.GetTransfer(); tr.GetReversed() && tr.GetPeerTransferId() != "" && tr.GetProgress().GetBytesDone() > 0 {
			peerID = tr.GetPeerTransferId()
		}
	}
	start := time.Now()
	cr, err := a.api.CancelTransfer(ctx, &ferryv1.CancelTransferRequest{Id: id})
	if err != nil {
		t.Fatal(err)
	}
	if st := cr.GetTransfer().GetState(); st != ferryv1.TransferState_TRANSFER_STATE_CANCELLED {
		t.Fatalf("state after cancel %v (%s)", st, cr.GetTransfer().GetError())
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("cancel took %v", d)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		pr, err := pb.api.GetTransfer(ctx, &ferryv1.GetTransferRequest{Id: peerID})
		if err != nil {
			t.Fatal(err)
		}
		st := pr.GetTransfer().GetState()
		if isFinal(st) {
			if st != ferryv1.TransferState_TRANSFER_STATE_CANCELLED {
				t.Errorf("peer's mirrored transfer ended %v (%s), want CANCELLED", st, pr.GetTransfer().GetError())
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("peer's mirrored transfer still %v 10s after the cancel", st)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if _, err := os.Stat(filepath.Join(a.root, "in", "slow.bin")); !os.IsNotExist(err) {
		t.Errorf("file at the final name after cancel: %v", err)
	}
	if _, err := os.Stat(filepath.Join(a.root, "in", ".slow.bin.ferry-part")); !os.IsNotExist(err) {
		t.Errorf("part file left after cancel: %v", err)
	}
}
