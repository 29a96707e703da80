package bench

import (
	"cmp"
	"fmt"
	"slices"
	"time"

	"github.com/pofr/pofr/internal/event"
)

// Bucket counts, for one group of generated items (a lifetime, a connection
// kind), how many a recorder caught by each criterion.
type Bucket struct {
	Name string
	N    int
	Hit  map[string]int
}

func newBucket(name string) *Bucket { return &Bucket{Name: name, Hit: map[string]int{}} }

// Pct returns the percentage of the bucket's items that met criterion.
func (b *Bucket) Pct(criterion string) float64 { return Percent(b.Hit[criterion], b.N) }

// buckets keeps buckets in order of first use.
type buckets struct {
	order []*Bucket
	by    map[string]*Bucket
}

func (bs *buckets) get(name string) *Bucket {
	if bs.by == nil {
		bs.by = map[string]*Bucket{}
	}
	b, ok := bs.by[name]
	if !ok {
		b = newBucket(name)
		bs.by[name] = b
		bs.order = append(bs.order, b)
	}
	return b
}

// byLifetime sorts lifetime buckets from shortest to longest (the stream
// shuffles them, so first appearance is no order).
func byLifetime(bs []*Bucket) []*Bucket {
	slices.SortStableFunc(bs, func(a, b *Bucket) int {
		da, _ := time.ParseDuration(a.Name)
		db, _ := time.ParseDuration(b.Name)
		return cmp.Compare(da, db)
	})
	return bs
}

// LifetimeName names a lifetime bucket: "0" for exit-at-once, else the
// duration ("5ms", "1s").
func LifetimeName(d time.Duration) string {
	if d == 0 {
		return "0"
	}
	return d.String()
}

// ExecCapture is how many of an exec storm's children a recorder recorded.
type ExecCapture struct {
	Spawned  int
	Recorded int // an exec row for the child
	Argv     int // … with argv
	Exe      int // … with exe
	// Machine counts exec rows of anyone within the storm's window: the
	// denominator for CPU per exec when other processes exec too.
	Machine int
}

// MatchExecs matches exec rows to the children of a storm: the pid was
// spawned, the row lies within the storm (plus slack for delivery) and its
// ppid is the spawner's (or unknown, 0). A pid spawned twice must be
// recorded twice.
func MatchExecs(rows []ProcRow, r ExecResult, slack time.Duration) ExecCapture {
	c := ExecCapture{Spawned: r.Spawned}
	want := map[int32]int{}
	for _, p := range r.PIDs {
		want[p]++
	}
	from, to := r.Start-int64(slack), r.End+int64(slack)
	for i := range rows {
		p := &rows[i]
		if p.Event != event.ProcExec || p.TS < from || p.TS > to {
			continue
		}
		c.Machine++
		if want[p.PID] == 0 || (p.PPID != int32(r.Spawner) && p.PPID != 0) {
			continue
		}
		want[p.PID]--
		c.Recorded++
		if p.HasArgv {
			c.Argv++
		}
		if p.HasExe {
			c.Exe++
		}
	}
	return c
}

// MatchProcs matches a lifetime stream's processes to exec rows by pid
// within the process's life (plus slack): "exec" counts a row, "argv" a row
// whose argv carries the process's marker, "exe" a row with an exe. Buckets
// are per lifetime, shortest first.
func MatchProcs(rows []ProcRow, r ProcsResult, slack time.Duration) []*Bucket {
	byPID := map[int32][]*ProcRow{}
	for i := range rows {
		if rows[i].Event == event.ProcExec {
			byPID[rows[i].PID] = append(byPID[rows[i].PID], &rows[i])
		}
	}
	var bs buckets
	for _, p := range r.Procs {
		b := bs.get(LifetimeName(p.Lifetime))
		b.N++
		var exec, argv, exe bool
		for _, row := range byPID[p.PID] {
			if row.TS < p.Spawn-int64(slack) || row.TS > p.Reap+int64(slack) {
				continue
			}
			exec = true
			argv = argv || row.Marker == p.Marker
			exe = exe || row.HasExe
		}
		for k, v := range map[string]bool{"exec": exec, "argv": argv, "exe": exe} {
			if v {
				b.Hit[k]++
			}
		}
	}
	return byLifetime(bs.order)
}

// PollProcs counts, per lifetime (shortest first), the processes whose
// marker a poller saw.
func PollProcs(seen *PollSeen, r ProcsResult) []*Bucket {
	var bs buckets
	for _, p := range r.Procs {
		b := bs.get(LifetimeName(p.Lifetime))
		b.N++
		if seen.Words[p.Marker] {
			b.Hit["seen"]++
		}
	}
	return byLifetime(bs.order)
}

// connBucket names a connection bucket: "tcp4/10ms".
func connBucket(c ConnRecord) string { return c.Kind + "/" + LifetimeName(c.Lifetime) }

func connKey(c ConnRecord) SockKey {
	return SockKey{Proto: Proto(c.Kind), Family: Family(c.Kind), LocalPort: c.LocalPort, RemotePort: c.RemotePort}
}

// MatchConns matches a connection stream's client sockets to sock rows by
// protocol, family and ports within the connection's life (plus slack):
// "seen" counts any row, "close" a close row, "owner" a row attributed to
// the stream's process.
func MatchConns(rows []SockRow, r ConnsResult, slack time.Duration) []*Bucket {
	byKey := map[SockKey][]*SockRow{}
	for i := range rows {
		byKey[rows[i].Key] = append(byKey[rows[i].Key], &rows[i])
	}
	var bs buckets
	for _, c := range r.Conns {
		b := bs.get(connBucket(c))
		b.N++
		var seen, closed, owner bool
		for _, row := range byKey[connKey(c)] {
			if row.TS < c.Open-int64(slack) || row.TS > c.Close+int64(slack) {
				continue
			}
			seen = true
			closed = closed || row.Event == event.SockClose
			owner = owner || row.PID == int32(r.Owner)
		}
		for k, v := range map[string]bool{"seen": seen, "close": closed, "owner": owner} {
			if v {
				b.Hit[k]++
			}
		}
	}
	return bs.order
}

// PollConns counts, per bucket, the connections a poller saw open ("seen":
// a line with an inode) and attributed to the stream's process ("owner").
func PollConns(seen *PollSeen, r ConnsResult) []*Bucket {
	var bs buckets
	for _, c := range r.Conns {
		b := bs.get(connBucket(c))
		b.N++
		if pid, ok := seen.Open[connKey(c)]; ok {
			b.Hit["seen"]++
			if pid == r.Owner {
				b.Hit["owner"]++
			}
		}
	}
	return bs.order
}

// churnOps are the operations a churn cycle makes, by the file op that
// records each: the create, the write (close after writing), the rename,
// the open for reading (of the renamed file), the delete.
var churnOps = []string{event.FileCreate, event.FileWrite, event.FileRename, event.FileOpen, event.FileDelete}

// MatchFiles counts, per file op, the churn cycles for which a row of that
// op names the cycle's file. A rename may be recorded as one rename row or
// as moved_from/moved_to; either counts.
func MatchFiles(rows []FileRow, r FileResult) []*Bucket {
	has := map[string]map[string]bool{} // op → file name → seen
	mark := func(op, name string) {
		if has[op] == nil {
			has[op] = map[string]bool{}
		}
		has[op][name] = true
	}
	for _, f := range rows {
		switch f.Op {
		case event.FileMoveFrom, event.FileMoveTo:
			mark(event.FileRename, f.Name)
		default:
			mark(f.Op, f.Name)
		}
		if f.NewName != "" {
			mark(f.Op, f.NewName)
		}
	}
	var bs buckets
	for _, op := range churnOps {
		b := bs.get(op)
		for i := range r.Cycles {
			created, renamed := ChurnNames(i)
			b.N++
			name := created
			if op == event.FileOpen || op == event.FileDelete {
				name = renamed
			}
			if has[op][name] || op == event.FileRename && has[op][renamed] {
				b.Hit["seen"]++
			}
		}
	}
	return bs.order
}

// String prints the bucket for debugging: "5ms: 200 of map[argv:199 …]".
func (b *Bucket) String() string { return fmt.Sprintf("%s: %d of %v", b.Name, b.N, b.Hit) }
