package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/pofr/pofr/internal/testutil"
)

// TestOpenSSHSite follows docs/transport.md for a site without pofr-server
// serve: 'pofr-collector keys' on the host, a chrooted internal-sftp account
// on a stock OpenSSH sshd with the printed upload key, 'pofr-server
// registrations add' with the printed keys and the account's inbox,
// 'pofr-collector register-openssh', then the collector records and pushes
// to sshd and 'pofr-server load' loads from the linked inbox.
func TestOpenSSHSite(t *testing.T) {
	testutil.RequireTier(t, testutil.TierE2E)
	testutil.RequireRoot(t)
	p := newInstallation(t)
	p.hostID = "web-01-e2e"

	out := p.run(30*time.Second, p.collector, "keys", "--config-dir", p.path("client"))
	upload := regexp.MustCompile(`(?m)^upload_key: (.+)$`).FindStringSubmatch(out)
	signing := regexp.MustCompile(`(?m)^signing_key: (.+)$`).FindStringSubmatch(out)
	if upload == nil || signing == nil || !strings.Contains(out, "pofr-server registrations add --host-id ") {
		t.Fatalf("keys printed:\n%s", out)
	}
	sshd := testutil.StartSSHD(t, testutil.SSHDConfig{AuthorizedKeysLines: []string{"restrict " + upload[1]}, Chroot: true})

	p.run(30*time.Second, p.server, "registrations", "add", "--state-dir", p.path("server"), "--host-id", p.hostID,
		"--hostname", "web01.example", "--ssh-key", upload[1], "--signing-key", signing[1], "--inbox", sshd.Inbox)
	if hosts := p.run(30*time.Second, p.server, "registrations", "hosts", "--state-dir", p.path("server")); !regexp.MustCompile(
		`(?m)^` + p.hostID + `\s+active\s+web01\.example\s.*\s` + regexp.QuoteMeta(sshd.Inbox) + `$`).MatchString(hosts) {
		t.Errorf("registrations hosts does not list %s as active with its inbox %s:\n%s", p.hostID, sshd.Inbox, hosts)
	}
	hostKey := p.path("sshd_host_key.pub")
	writeFile(t, hostKey, string(ssh.MarshalAuthorizedKey(sshd.HostKey)))
	p.run(30*time.Second, p.collector, "register-openssh", "--config-dir", p.path("client"), "--server", sshd.Addr,
		"--host-key-file", hostKey, "--host-id", p.hostID, "--user", sshd.User, "--remote-dir", sshd.RemoteInbox)

	coll := p.startCollector("--segment-age", "1s")
	// Unique per run: the package's database outlives one run (-count).
	marker := fmt.Sprintf("pofr-openssh-e2e-%d", time.Now().UnixNano())
	// The marker process reads its stdin, which the test closes once the
	// collector stopped: the collector reads argv from /proc (or the exec's
	// stack dump) when it gets to the event, which on a loaded machine can
	// be after a short-lived process ended (issue 14).
	const script = "read x; exit 0"
	mark := exec.Command("/bin/sh", "-c", script, marker)
	markDone, release := testutil.StartHeld(t, mark)
	testutil.WaitEvery(t, 60*time.Second, 200*time.Millisecond, "segments in the sshd account's inbox", func() bool {
		ents, _ := os.ReadDir(sshd.Inbox)
		for _, e := range ents {
			if strings.HasSuffix(e.Name(), ".pofr") {
				return true
			}
		}
		return false
	})
	p.stopCollector(coll)
	release()
	testutil.Await(t, markDone, 10*time.Second, "marker command", func() { mark.Process.Kill() })
	p.load()

	var n int
	if err := p.db.QueryRow(`SELECT COUNT(*) FROM proc_events
		WHERE host_id = ? AND event = 'exec' AND argv = ?`, p.hostID, argvBytes("/bin/sh", "-c", script, marker)).Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != 1 {
		t.Errorf("exec rows of /bin/sh -c %q %s for host %s: %d, want 1", script, marker, p.hostID, n)
	}
	if left, _ := os.ReadDir(sshd.Inbox); len(left) != 0 {
		t.Errorf("the account's inbox after the load holds %d entries, want none", len(left))
	}
	p.checkLedger()
}
