package uplink_test

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/pkg/sftp"
	"golang.org/x/crypto/ssh"

	"github.com/pofr/pofr/internal/registry"
	"github.com/pofr/pofr/internal/statedir"
	"github.com/pofr/pofr/internal/testutil"
	"github.com/pofr/pofr/receiver"
	"github.com/pofr/pofr/uplink"
	"github.com/pofr/pofr/wire"
)

// childEnv makes the test binary a receiver process (for CPU accounting).
const childEnv = "POFR_UPLINK_TEST_RECEIVER_STATE"

// runChildReceiver serves state on a loopback port, prints the address, and
// stops on SIGTERM.
func runChildReceiver(state statedir.Dir) int {
	srv, err := receiver.NewServer(receiver.Options{StateDir: state})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM)
	defer stop()
	fmt.Println(ln.Addr().String())
	if err := srv.Serve(ctx, ln); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return 0
}

// benchHost registers a host directly in the registry of state and returns
// a pusher configuration for it.
func benchHost(b testing.TB, state statedir.Dir, addr string, hostKey ssh.PublicKey) (*uplink.Config, ssh.Signer) {
	b.Helper()
	keys, err := uplink.EnsureKeys(b.TempDir())
	if err != nil {
		b.Fatal(err)
	}
	const id = "bench-0001"
	if err := registry.Save(state, &registry.Host{HostID: id, Facts: wire.Facts{Hostname: id, MachineID: strings.Repeat("e", 32)},
		SSHKey: keys.SSHAuthorizedKey(), SigningKey: make([]byte, 32), Status: registry.StatusActive}); err != nil {
		b.Fatal(err)
	}
	return &uplink.Config{Server: addr, HostKey: strings.TrimSpace(string(ssh.MarshalAuthorizedKey(hostKey))),
		HostID: id, User: id}, keys.SSH
}

// BenchmarkPushThroughput uploads 4 MiB segments to an in-process receiver,
// one per iteration, over one connection.
func BenchmarkPushThroughput(b *testing.B) {
	s := startReceiver(b, "", "127.0.0.1:0", nil)
	cfg, signer := benchHost(b, s.state, s.addr, s.srv.HostKey())
	spool := b.TempDir()
	const size = 4 << 20
	q := &dirQueue{dir: spool}
	p, err := uplink.NewPusher(uplink.PushOptions{Config: cfg, Signer: signer, Queue: q, Interval: time.Millisecond})
	if err != nil {
		b.Fatal(err)
	}
	runPusher(b, p)
	inbox := s.state.Host(cfg.HostID).Inbox
	b.SetBytes(size)
	i := 0
	for b.Loop() {
		writeSegment(b, spool, segName(cfg.HostID, i), size)
		i++
		p.Notify()
		for p.Stats().Uploaded < int64(i) {
			time.Sleep(100 * time.Microsecond)
		}
		os.Remove(filepath.Join(inbox, segName(cfg.HostID, i-1)))
	}
}

// BenchmarkHandshake measures connect + key exchange + public key auth +
// SFTP session, against the receiver and (as root with OpenSSH installed)
// against sshd with a chrooted internal-sftp account.
func BenchmarkHandshake(b *testing.B) {
	b.Run("receiver", func(b *testing.B) {
		s := startReceiver(b, "", "127.0.0.1:0", nil)
		cfg, signer := benchHost(b, s.state, s.addr, s.srv.HostKey())
		benchHandshake(b, cfg.Server, cfg.User, signer, s.srv.HostKey())
	})
	b.Run("openssh", func(b *testing.B) {
		keys, err := uplink.EnsureKeys(b.TempDir())
		if err != nil {
			b.Fatal(err)
		}
		sshd := testutil.StartSSHD(b, testutil.SSHDConfig{AuthorizedKeys: []ssh.PublicKey{keys.SSH.PublicKey()}, Chroot: true})
		benchHandshake(b, sshd.Addr, sshd.User, keys.SSH, sshd.HostKey)
	})
}

func benchHandshake(b *testing.B, addr, user string, signer ssh.Signer, hk ssh.PublicKey) {
	cfg := &ssh.ClientConfig{User: user, Auth: []ssh.AuthMethod{ssh.PublicKeys(signer)},
		HostKeyCallback: ssh.FixedHostKey(hk), HostKeyAlgorithms: []string{hk.Type()}, Timeout: 10 * time.Second}
	for b.Loop() {
		c, err := ssh.Dial("tcp", addr, cfg)
		if err != nil {
			b.Fatal(err)
		}
		sc, err := sftp.NewClient(c)
		if err != nil {
			b.Fatal(err)
		}
		sc.Close()
		c.Close()
	}
}

// BenchmarkDrain drains a backlog into a receiver running as a child
// process, and reports the drain rate and the receiver's CPU time (user +
// system, from its rusage) per 1,000 segments. The 4MiB case holds 256 MiB;
// the time for 1 GiB is extrapolated from it (reported as s/GiB).
func BenchmarkDrain(b *testing.B) {
	for _, c := range []struct {
		name string
		n    int
		size int
	}{{"4MiBx64", 64, 4 << 20}, {"64KiBx1000", 1000, 64 << 10}} {
		b.Run(c.name, func(b *testing.B) {
			for b.Loop() {
				drainOnce(b, c.n, c.size)
			}
		})
	}
}

func drainOnce(b *testing.B, n, size int) {
	state := statedir.Dir(b.TempDir())
	srv, err := receiver.NewServer(receiver.Options{StateDir: state}) // creates the host key
	if err != nil {
		b.Fatal(err)
	}
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), childEnv+"="+state.String())
	out, _ := cmd.StdoutPipe()
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	defer cmd.Process.Kill()
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil {
		b.Fatalf("child receiver: %v", err)
	}
	cfg, signer := benchHost(b, state, strings.TrimSpace(line), srv.HostKey())
	spool := b.TempDir()
	for i := range n {
		writeSegment(b, spool, segName(cfg.HostID, i), size)
	}
	q := &dirQueue{dir: spool}
	p, err := uplink.NewPusher(uplink.PushOptions{Config: cfg, Signer: signer, Queue: q, Interval: time.Millisecond})
	if err != nil {
		b.Fatal(err)
	}
	start := time.Now()
	stop := runPusher(b, p)
	for p.Stats().Uploaded < int64(n) {
		time.Sleep(time.Millisecond)
	}
	elapsed := time.Since(start)
	stop()
	cmd.Process.Signal(syscall.SIGTERM)
	if err := cmd.Wait(); err != nil {
		b.Fatalf("child receiver: %v", err)
	}
	ru := cmd.ProcessState.SysUsage().(*syscall.Rusage)
	cpu := time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	total := float64(n) * float64(size)
	b.ReportMetric(elapsed.Seconds(), "drain-s")
	b.ReportMetric(total/elapsed.Seconds()/1e6, "MB/s")
	b.ReportMetric(elapsed.Seconds()*float64(1<<30)/total, "s/GiB")
	b.ReportMetric(cpu.Seconds()*1000/float64(n), "server-cpu-s/1000seg")
}
