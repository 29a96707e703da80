package collector

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/pofr/pofr/internal/event"
)

// AccountSource sends the host's uid → user name and gid → group name maps
// (from /etc/passwd and /etc/group) as acct rows: at start, whenever either
// file changes, and every Refresh interval, so that the server can print
// names and answer "what did alice run" without trusting its own passwd.
type AccountSource struct {
	// Sink receives the rows.
	Sink event.Sink
	// Root is prepended to /etc/passwd and /etc/group (tests use a fixture
	// tree); empty means the real files.
	Root string
	// Poll is how often the files' modification times are checked (default 10 s).
	Poll time.Duration
	// Refresh is how often the maps are sent even when unchanged (default 1 h),
	// so a server that lost a segment still learns them.
	Refresh time.Duration
	// Now returns the current time (default time.Now).
	Now func() time.Time
}

// Run sends the maps until ctx is done. It returns nil on cancellation and an
// error only if neither file could ever be read.
func (s *AccountSource) Run(ctx context.Context) error {
	poll, refresh, now := s.Poll, s.Refresh, s.Now
	if poll <= 0 {
		poll = 10 * time.Second
	}
	if refresh <= 0 {
		refresh = time.Hour
	}
	if now == nil {
		now = time.Now
	}
	var last [2]time.Time
	var sent time.Time
	t := time.NewTicker(poll)
	defer t.Stop()
	for first := true; ; first = false {
		var cur [2]time.Time
		for i, f := range []string{"passwd", "group"} {
			if fi, err := os.Stat(filepath.Join(s.Root, "/etc", f)); err == nil {
				cur[i] = fi.ModTime()
			}
		}
		if first || cur != last || now().Sub(sent) >= refresh {
			n, err := s.SendOnce()
			if err != nil && first && n == 0 {
				return err
			}
			last, sent = cur, now()
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// SendOnce reads both files and sends one row per entry. It returns the
// number of rows sent.
func (s *AccountSource) SendOnce() (int, error) {
	ts := time.Now()
	if s.Now != nil {
		ts = s.Now()
	}
	var n int
	var firstErr error
	for _, f := range []struct{ file, kind string }{{"passwd", event.AcctUser}, {"group", event.AcctGroup}} {
		b, err := os.ReadFile(filepath.Join(s.Root, "/etc", f.file))
		if err != nil {
			if firstErr == nil {
				firstErr = fmt.Errorf("read accounts: %w", err)
			}
			continue
		}
		for _, a := range ParseAccounts(b) {
			s.Sink.AppendAccount(&event.Account{TS: ts.UnixNano(), Kind: f.kind, ID: a.ID, Name: a.Name})
			n++
		}
	}
	return n, firstErr
}

// IDName is one entry of /etc/passwd or /etc/group.
type IDName struct {
	ID   uint32
	Name []byte
}

// ParseAccounts parses the name:x:id:… lines of /etc/passwd or /etc/group.
// Comments, blank lines, NIS "+"/"-" entries and lines whose id is not a
// number are skipped; names are kept as exact bytes.
func ParseAccounts(b []byte) []IDName {
	var out []IDName
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(make([]byte, 0, 4096), 1<<20)
	for sc.Scan() {
		line := sc.Bytes()
		if len(line) == 0 || line[0] == '#' || line[0] == '+' || line[0] == '-' {
			continue
		}
		f := bytes.SplitN(line, []byte{':'}, 4)
		if len(f) < 3 || len(f[0]) == 0 {
			continue
		}
		id, err := strconv.ParseUint(string(f[2]), 10, 32)
		if err != nil {
			continue
		}
		out = append(out, IDName{ID: uint32(id), Name: bytes.Clone(f[0])})
	}
	return out
}
