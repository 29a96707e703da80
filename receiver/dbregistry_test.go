package receiver

import (
	"crypto/ed25519"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/pofr/pofr/internal/registry"
	"github.com/pofr/pofr/internal/statedir"
	"github.com/pofr/pofr/internal/testutil"
	"github.com/pofr/pofr/wire"
)

// dbRegistries returns n registries on one new MariaDB database, each with
// its own connection pool and state directory, as n receivers have.
func dbRegistries(t *testing.T, n int) []*registry.DB {
	t.Helper()
	m := testutil.StartMariaDB(t)
	dsn, _ := m.NewDatabase(t)
	var out []*registry.DB
	for range n {
		db, err := sql.Open("mysql", dsn) // parseTime=true, as loader.OpenDB
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { db.Close() })
		r, err := registry.OpenDB(testutil.Deadline(t, time.Minute), db, statedir.Dir(t.TempDir()))
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, r)
	}
	return out
}

// testRequest is request i of a machine, with keys of its own.
func testRequest(i int, machine string) *wire.Request {
	pub, _, err := ed25519.GenerateKey(nil)
	if err != nil {
		panic(err)
	}
	k, err := ssh.NewPublicKey(pub)
	if err != nil {
		panic(err)
	}
	return &wire.Request{Version: wire.Version, RequestID: fmt.Sprintf("%032x", i),
		Facts:  wire.Facts{Hostname: fmt.Sprintf("web-%d.example", i), MachineID: machine},
		SSHKey: strings.TrimSpace(string(ssh.MarshalAuthorizedKey(k))), SigningKey: pub}
}

// submitIn runs submit as the receiver does, inside reg.Update.
func submitIn(reg registry.Store, req *wire.Request, auth Auth, tokenHash string) (r *Registration, err error) {
	err = reg.Update(func(reg registry.Store) error {
		r, err = submit(reg, req, auth, tokenHash, "192.0.2.1", time.Now())
		return err
	})
	return r, err
}

// TestDBRegistryConcurrentReceivers: two receivers sharing the MariaDB
// registry register hosts at once: every host gets its own id, one token
// grants exactly one request whichever receiver sees it, one machine
// registered twice at once is granted once, and two admins approving one
// request at once grant it once.
func TestDBRegistryConcurrentReceivers(t *testing.T) {
	regs := dbRegistries(t, 2)
	a, b := regs[0], regs[1]

	// 40 hosts, each with its own token, half through each receiver.
	const n = 40
	toks := make([]string, n)
	for i := range toks {
		var err error
		if toks[i], err = CreateToken(regs[i%2], time.Hour); err != nil {
			t.Fatal(err)
		}
	}
	var wg sync.WaitGroup
	errs := make([]error, n)
	ids := make([]string, n)
	for i := range n {
		wg.Go(func() {
			r, err := submitIn(regs[(i+1)%2], testRequest(i+1, fmt.Sprintf("%032x", i+1)), AuthToken, hashToken([]byte(toks[i])))
			if err == nil && r.Status != wire.StatusGranted {
				err = fmt.Errorf("status %s (%s)", r.Status, r.Reason)
			}
			errs[i] = err
			if r != nil {
				ids[i] = r.HostID
			}
		})
	}
	wg.Wait()
	seen := map[string]bool{}
	for i, err := range errs {
		if err != nil {
			t.Fatalf("request %d: %v", i, err)
		}
		if seen[ids[i]] {
			t.Fatalf("host id %s granted twice", ids[i])
		}
		seen[ids[i]] = true
	}
	hosts, err := b.Hosts()
	if err != nil || len(hosts) != n {
		t.Fatalf("receiver B sees %d hosts (%v), want %d", len(hosts), err, n)
	}

	// One token, two requests of different machines at once on A and B:
	// one is granted, the other waits for an admin.
	tok, err := CreateToken(a, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	var got [2]*Registration
	for i, reg := range regs {
		wg.Go(func() {
			r, err := submitIn(reg, testRequest(100+i, fmt.Sprintf("%032x", 100+i)), AuthToken, hashToken([]byte(tok)))
			if err != nil {
				t.Error(err)
			}
			got[i] = r
		})
	}
	wg.Wait()
	if got[0] == nil || got[1] == nil {
		t.FailNow()
	}
	if st := []wire.Status{got[0].Status, got[1].Status}; !(st[0] == wire.StatusGranted && st[1] == wire.StatusPending || st[1] == wire.StatusGranted && st[0] == wire.StatusPending) {
		t.Errorf("one token on two receivers: %v, want one granted and one pending", st)
	}

	// One machine registering through both at once, two tokens: one host.
	machine := strings.Repeat("7", 32)
	t1, _ := CreateToken(a, time.Hour)
	t2, _ := CreateToken(b, time.Hour)
	var granted sync.Map
	for i, reg := range regs {
		wg.Go(func() {
			r, err := submitIn(reg, testRequest(200+i, machine), AuthToken, hashToken([]byte([]string{t1, t2}[i])))
			if err != nil {
				t.Error(err)
				return
			}
			if r.Status == wire.StatusGranted {
				granted.Store(r.HostID, true)
			}
		})
	}
	wg.Wait()
	k := 0
	granted.Range(func(any, any) bool { k++; return true })
	if k != 1 {
		t.Errorf("one machine registered through two receivers at once: %d hosts granted, want 1", k)
	}

	// A pending request approved by two admins at once: one grant.
	if _, err := submitIn(a, testRequest(300, strings.Repeat("3", 32)), AuthPassword, ""); err != nil {
		t.Fatal(err)
	}
	var okN, decided int
	var mu sync.Mutex
	for _, reg := range regs {
		wg.Go(func() {
			_, err := Approve(reg, fmt.Sprintf("%032x", 300))
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err == nil:
				okN++
			case errors.Is(err, ErrDecided):
				decided++
			default:
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if okN != 1 || decided != 1 {
		t.Errorf("two approvals at once: %d granted, %d refused as decided; want 1 and 1", okN, decided)
	}

	// A revocation through A is seen by B at once.
	if err := Revoke(a, ids[0], false); err != nil {
		t.Fatal(err)
	}
	if h, err := b.Host(ids[0]); err != nil || h.Status != registry.StatusRevoked || h.SSHKey != "" {
		t.Errorf("B sees revoked host as %+v, %v", h, err)
	}
}

// TestDBRegistryPendingLimit: the bound on pending requests holds across
// receivers, and duplicates are denied without a row.
func TestDBRegistryPendingLimit(t *testing.T) {
	regs := dbRegistries(t, 2)
	for i := range MaxPending {
		r := &Registration{RequestID: fmt.Sprintf("%032x", i+1), Status: wire.StatusPending, CreatedAt: time.Now()}
		if err := saveRegistration(regs[i%2], r); err != nil {
			t.Fatal(err)
		}
	}
	if n, err := regs[1].CountPending(); err != nil || n != MaxPending {
		t.Fatalf("CountPending = %d, %v; want %d", n, err, MaxPending)
	}
	if _, err := submitIn(regs[0], testRequest(MaxPending+1, strings.Repeat("e", 32)), AuthPassword, ""); !errors.Is(err, ErrTooManyPending) {
		t.Errorf("request beyond the pending bound: %v, want ErrTooManyPending", err)
	}
	if _, err := Deny(regs[1], fmt.Sprintf("%032x", 1), ""); err != nil {
		t.Fatal(err)
	}
	if r, err := submitIn(regs[0], testRequest(MaxPending+1, strings.Repeat("e", 32)), AuthPassword, ""); err != nil || r.Status != wire.StatusPending {
		t.Errorf("request after a denial: %v, %v; want pending", r, err)
	}
}
