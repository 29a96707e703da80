package e2e

import (
	"bufio"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/pofr/pofr/internal/testutil"
	"github.com/pofr/pofr/spool"
)

// The test binary re-executes itself as the TCP listener of TestTwoHostsPeers
// (inside host B's network namespace) when peersHelperEnv is "listen".
const (
	peersHelperEnv  = "POFR_E2E_PEERS_HELPER"
	peersListenAddr = "POFR_E2E_PEERS_ADDR"
)

func init() {
	if os.Getenv(peersHelperEnv) != "listen" {
		return
	}
	if err := peersListen(os.Getenv(peersListenAddr), os.Stdout); err != nil {
		fmt.Fprintf(os.Stderr, "peers listener: %v\n", err)
		os.Exit(1)
	}
	os.Exit(0)
}

// peersListen listens on addr (port 0), prints "port N", accepts one
// connection, prints "accepted CLIENTPORT" and reads until the client closes
// it. Every step has a deadline.
func peersListen(addr string, out io.Writer) error {
	ln, err := net.Listen("tcp", net.JoinHostPort(addr, "0"))
	if err != nil {
		return err
	}
	defer ln.Close()
	tl := ln.(*net.TCPListener)
	if err := tl.SetDeadline(time.Now().Add(60 * time.Second)); err != nil {
		return err
	}
	fmt.Fprintf(out, "port %d\n", tl.Addr().(*net.TCPAddr).Port)
	c, err := tl.Accept()
	if err != nil {
		return fmt.Errorf("accept: %w", err)
	}
	defer c.Close()
	fmt.Fprintf(out, "accepted %d\n", c.RemoteAddr().(*net.TCPAddr).Port)
	if err := c.SetDeadline(time.Now().Add(60 * time.Second)); err != nil {
		return err
	}
	_, err = io.Copy(io.Discard, c)
	return err
}

// Addresses of the two hosts on their veth pair (TEST-NET-2, RFC 5737).
const (
	peersAddrA = "198.51.100.1"
	peersAddrB = "198.51.100.2"
)

// peersClientScript is run by a bash in host A with the listener's port as
// $1: it holds a TCP connection to host B open for 2.5 s, so that both
// collectors' socket dumps see it with its owner.
const peersClientScript = `exec 3<>/dev/tcp/` + peersAddrB + `/$1
echo connected
sleep 2.5 3<&-
exec 3<&-
exit 0`

// peersLauncher runs "$@" in the background and prints its pid, so that the
// process of interest is a fork of bash that execs its program, not the
// process `ip netns exec` became (whose first exec is ip itself).
const peersLauncher = `"$@" &
echo "pid $!"
wait $!`

// nsHost is one monitored host of TestTwoHostsPeers: a network namespace with
// its own /etc/machine-id (ip netns exec bind-mounts /etc/netns/NAME/* over
// /etc), configuration and state directories and registration.
type nsHost struct {
	label  string // "a" or "b"
	netns  string
	addr   string
	cfg    string // --config-dir
	state  string // --state-dir
	hostID string
	coll   *process
}

// TestTwoHostsPeers runs two monitored hosts on this machine, each a network
// namespace with its own collector and registration, connected by a veth
// pair. A process on host A connects to a listener on host B; after the
// load, query peers and the peer_connections view pair the two ends with the
// client process on A and the listener on B.
//
// The kernel's proc connector answers only in the initial network namespace
// (cn_proc subscribe is refused elsewhere), so both collectors record
// processes in poll mode; the two processes of interest live for seconds,
// so the 200 ms polls see them with their exe and argv.
func TestTwoHostsPeers(t *testing.T) {
	testutil.RequireTier(t, testutil.TierE2E)
	testutil.RequireRoot(t)
	for _, tool := range []string{"ip", "bash"} {
		if _, err := exec.LookPath(tool); err != nil {
			testutil.Skip(t, testutil.TierE2E, tool+" is not installed")
		}
	}
	p := newInstallation(t)

	a, b := setupNetns(t, p)

	// The receiver runs in host A; B reaches it over the veth pair.
	p.serve = p.start("serve", "ip", "netns", "exec", a.netns, p.server, "serve",
		"--listen", peersAddrA+":0", "--state-dir", p.path("server"))
	p.addr = p.serve.waitLog(t, regexp.MustCompile(`(?m)^pofr-server listening on (\S+)$`), 20*time.Second)[1]
	fp := p.serveFingerprint()
	for _, h := range []*nsHost{a, b} {
		tok := p.run(30*time.Second, p.server, "token", "create", "--state-dir", p.path("server"), "--ttl", "10m")
		tokFile := p.path("token-" + h.label)
		writeFile(t, tokFile, tok)
		p.run(60*time.Second, "ip", "netns", "exec", h.netns, p.collector, "register", "--server", p.addr,
			"--server-fingerprint", fp, "--token-file", tokFile, "--config-dir", h.cfg)
		h.hostID = readHostID(t, h.cfg)
	}
	if a.hostID == b.hostID {
		t.Fatalf("both hosts registered as %s", a.hostID)
	}
	for _, h := range []*nsHost{a, b} {
		h.coll = p.start("collector-"+h.label, "ip", "netns", "exec", h.netns, p.collector, "run",
			"--config-dir", h.cfg, "--state-dir", h.state, "--segment-age", "1s")
		h.coll.waitLog(t, regexp.MustCompile(`process source recording|POLL MODE`), 30*time.Second)
		h.coll.waitLog(t, regexp.MustCompile(`sock source started|sock_diag unavailable|sockets are not recorded`), 30*time.Second)
		out := h.coll.output()
		if !strings.Contains(out, "sock source started") {
			t.Fatalf("collector of host %s does not record sockets with sock_diag:\n%s", h.label, out)
		}
		if strings.Contains(out, "POLL MODE") {
			t.Logf("collector of host %s polls /proc: the proc connector serves only the initial network namespace", h.label)
		}
	}

	// The listener on host B.
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	srv := exec.Command("ip", "netns", "exec", b.netns, "/bin/bash", "-c", peersLauncher, "e2e-peer-launcher", self)
	srv.Env = append(os.Environ(), peersHelperEnv+"=listen", peersListenAddr+"="+peersAddrB)
	srv.Stderr = os.Stderr
	srvLines := startLines(t, srv)
	testutil.WaitEvery(t, 20*time.Second, 20*time.Millisecond, "the listener's port", func() bool { return srvLines.value("port") != "" })
	serverPid := atoi(t, srvLines.value("pid"))
	lnPort := atoi(t, srvLines.value("port"))

	// The client on host A.
	cli := exec.Command("ip", "netns", "exec", a.netns, "/bin/bash", "-c", peersLauncher, "e2e-peer-launcher",
		"/bin/bash", "-c", peersClientScript, "e2e-peer-client", strconv.Itoa(lnPort))
	cli.Stderr = os.Stderr
	cliLines := startLines(t, cli)
	waitExit(t, cli, cliLines, 30*time.Second, "client")
	waitExit(t, srv, srvLines, 30*time.Second, "listener")
	if !cliLines.has("connected") {
		t.Fatalf("the client did not connect: %q", cliLines.lines)
	}
	clientPid := atoi(t, cliLines.value("pid"))
	clientPort := atoi(t, srvLines.value("accepted"))
	t.Logf("host A %s (%s): client pid %d, %s:%d → host B %s (%s): listener pid %d, %s:%d",
		a.hostID, a.netns, clientPid, peersAddrA, clientPort, b.hostID, b.netns, serverPid, peersAddrB, lnPort)

	time.Sleep(3 * time.Second) // a socket dump after the close on both hosts
	for _, h := range []*nsHost{a, b} {
		if err := h.coll.stop(syscall.SIGTERM, 40*time.Second); err != nil {
			t.Fatalf("stop the collector of host %s: %v\n%s", h.label, err, h.coll.output())
		}
		infos, err := spool.List(filepath.Join(h.state, "spool"))
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			t.Fatal(err)
		}
		if len(infos) != 0 {
			t.Errorf("host %s: a clean stop left %d segments unpushed", h.label, len(infos))
		}
	}
	t.Logf("load: %s", strings.TrimSpace(p.load()))

	bash := realPath(t, "/bin/bash")
	selfExe := realPath(t, self)
	clientArgv := argvBytes("/bin/bash", "-c", peersClientScript, "e2e-peer-client", strconv.Itoa(lnPort))

	// query peers --json, filtered to this connection's ports.
	type peerRow struct {
		Proto      string `json:"proto"`
		ClientHost string `json:"client_host"`
		ClientPid  int    `json:"client_pid"`
		ClientExe  string `json:"client_exe"`
		ClientAddr string `json:"client_addr"`
		ClientPort int    `json:"client_port"`
		ServerHost string `json:"server_host"`
		ServerAddr string `json:"server_addr"`
		ServerPort int    `json:"server_port"`
		ServerPid  int    `json:"server_pid"`
		ServerExe  string `json:"server_exe"`
	}
	out := p.run(time.Minute, p.server, "query", "peers", "--json", "--dsn-file", p.dsnFile)
	var gotPeers []peerRow
	sc := bufio.NewScanner(strings.NewReader(out))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var r peerRow
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			t.Fatalf("query peers --json line %q: %v", sc.Text(), err)
		}
		if r.ServerPort == lnPort || r.ClientPort == clientPort {
			gotPeers = append(gotPeers, r)
		}
	}
	wantPeers := []peerRow{{
		Proto:      "tcp",
		ClientHost: a.hostID, ClientPid: clientPid, ClientExe: bash, ClientAddr: peersAddrA, ClientPort: clientPort,
		ServerHost: b.hostID, ServerAddr: peersAddrB, ServerPort: lnPort, ServerPid: serverPid, ServerExe: selfExe,
	}}
	if diff := cmp.Diff(wantPeers, gotPeers); diff != "" {
		t.Errorf("query peers rows of the connection (-want +got):\n%s\nfull output:\n%s", diff, out)
	}

	// The peer_connections view, with both argv.
	type viewRow struct {
		ClientHost, ClientIP                string
		ClientPort, ClientPid               int
		ClientExe, ClientArgvHex            string
		ServerHost, ServerIP                string
		ServerPort, ServerPid               int
		ServerExe, ServerArgvHex            string
		ClientStartOK, ServerStartOK, Proto string
	}
	var gotView []viewRow
	testutil.EachRow(t, p.db, func(row testutil.Row) {
		var r viewRow
		var cExe, sExe, cArgv, sArgv sql.NullString
		row.Scan(&r.ClientHost, &r.ClientIP, &r.ClientPort, &r.ClientPid, &cExe, &cArgv,
			&r.ServerHost, &r.ServerIP, &r.ServerPort, &r.ServerPid, &sExe, &sArgv,
			&r.ClientStartOK, &r.ServerStartOK, &r.Proto)
		r.ClientExe, r.ClientArgvHex, r.ServerExe, r.ServerArgvHex = cExe.String, cArgv.String, sExe.String, sArgv.String
		gotView = append(gotView, r)
	}, `SELECT client_host, client_ip, client_port, client_pid, client_exe, HEX(client_argv),
			server_host, server_ip, server_port, server_pid, server_exe, HEX(server_argv),
			IF(client_proc_start IS NULL, 'null', 'ok'), IF(server_proc_start IS NULL, 'null', 'ok'), proto
		FROM peer_connections WHERE server_port = ? OR client_port = ?`, lnPort, clientPort)
	wantView := []viewRow{{
		ClientHost: a.hostID, ClientIP: peersAddrA, ClientPort: clientPort, ClientPid: clientPid,
		ClientExe: bash, ClientArgvHex: hexUpper(clientArgv),
		ServerHost: b.hostID, ServerIP: peersAddrB, ServerPort: lnPort, ServerPid: serverPid,
		ServerExe: selfExe, ServerArgvHex: hexUpper(argvBytes(self)),
		ClientStartOK: "ok", ServerStartOK: "ok", Proto: "tcp",
	}}
	if diff := cmp.Diff(wantView, gotView); diff != "" {
		t.Errorf("peer_connections rows of the connection (-want +got):\n%s", diff)
	}
}

// setupNetns creates the network namespaces of hosts A and B, each with its
// own machine id, joined by a veth pair with peersAddrA and peersAddrB, and
// removes them in the test's cleanup.
func setupNetns(t *testing.T, p *pipeline) (a, b *nsHost) {
	t.Helper()
	suffix := strconv.Itoa(os.Getpid())
	a = &nsHost{label: "a", netns: "pofr-e2e-a-" + suffix, addr: peersAddrA, cfg: p.path("a", "client"), state: p.path("a", "collector")}
	b = &nsHost{label: "b", netns: "pofr-e2e-b-" + suffix, addr: peersAddrB, cfg: p.path("b", "client"), state: p.path("b", "collector")}

	const etcNetns = "/etc/netns"
	_, statErr := os.Stat(etcNetns)
	createdEtc := errors.Is(statErr, os.ErrNotExist)
	for _, h := range []*nsHost{a, b} {
		dir := filepath.Join(etcNetns, h.netns)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { os.RemoveAll(dir) })
		id := make([]byte, 16)
		rand.Read(id)
		if err := os.WriteFile(filepath.Join(dir, "machine-id"), []byte(hex.EncodeToString(id)+"\n"), 0o444); err != nil {
			t.Fatal(err)
		}
		p.run(10*time.Second, "ip", "netns", "add", h.netns)
		t.Cleanup(func() {
			if out, err := exec.Command("ip", "netns", "del", h.netns).CombinedOutput(); err != nil {
				t.Errorf("ip netns del %s: %v: %s", h.netns, err, out)
			}
		})
	}
	if createdEtc {
		t.Cleanup(func() { os.Remove(etcNetns) }) // only when empty: another test's namespaces stay
	}
	vethA, vethB := "pofra"+suffix, "pofrb"+suffix
	p.run(10*time.Second, "ip", "link", "add", vethA, "netns", a.netns, "type", "veth", "peer", "name", vethB, "netns", b.netns)
	for _, h := range []struct{ netns, dev, addr string }{{a.netns, vethA, peersAddrA}, {b.netns, vethB, peersAddrB}} {
		p.run(10*time.Second, "ip", "-n", h.netns, "addr", "add", h.addr+"/24", "dev", h.dev)
		p.run(10*time.Second, "ip", "-n", h.netns, "link", "set", h.dev, "up")
		p.run(10*time.Second, "ip", "-n", h.netns, "link", "set", "lo", "up")
	}
	return a, b
}

// readHostID returns the host id registration wrote to server.json in dir.
func readHostID(t *testing.T, dir string) string {
	t.Helper()
	var cfg struct {
		HostID string `json:"host_id"`
	}
	data, err := os.ReadFile(filepath.Join(dir, "server.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(data, &cfg); err != nil || cfg.HostID == "" {
		t.Fatalf("read host id from %s/server.json: %v (%s)", dir, err, data)
	}
	return cfg.HostID
}

// has reports whether a line equals s.
func (lr *lineReader) has(s string) bool {
	lr.mu.Lock()
	defer lr.mu.Unlock()
	for _, l := range lr.lines {
		if l == s {
			return true
		}
	}
	return false
}

func atoi(t *testing.T, s string) int {
	t.Helper()
	n, err := strconv.Atoi(s)
	if err != nil {
		t.Fatalf("not a number: %q", s)
	}
	return n
}
