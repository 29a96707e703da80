package query

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Hosts lists the registered hosts with their last data, chain status and
// gap count (hosts.sql).
func (q *Querier) Hosts(ctx context.Context) (*Table, error) {
	return q.Run(ctx, "hosts")
}

// Gaps lists every interval in which host's record is incomplete (gaps.sql).
func (q *Querier) Gaps(ctx context.Context, host string, r Range) (*Table, error) {
	id, err := q.ResolveHost(ctx, host)
	if err != nil {
		return nil, err
	}
	return q.Run(ctx, "gaps", append([]Param{{"host", id}}, rangeParams(r)...)...)
}

// Tree returns the process tree of host alive at the moment at (tree.sql),
// in depth-first order: each child under its parent, siblings by start. Its
// tree column is the argv (or [exe]) indented two spaces per depth, for the
// table and CSV; JSON has depth, exe and argv exactly.
func (q *Querier) Tree(ctx context.Context, host string, at time.Time) (*Table, error) {
	id, err := q.ResolveHost(ctx, host)
	if err != nil {
		return nil, err
	}
	t, err := q.Run(ctx, "tree", Param{"host", id}, Param{"at", at.UTC()})
	if err != nil {
		return nil, err
	}
	return treeOrder(t), nil
}

// treeOrder reorders tree.sql's rows depth first and adds depth and tree.
func treeOrder(t *Table) *Table {
	type key struct{ pid, start int64 }
	iPID, iStart, iPPID, iPStart := t.column("pid"), t.column("proc_start"), t.column("ppid"), t.column("_parent_start")
	num := func(v any) int64 {
		n, _ := v.(int64)
		return n
	}
	present := map[key]bool{}
	for _, row := range t.Rows {
		present[key{num(row[iPID]), num(row[iStart])}] = true
	}
	children := map[key][]int{}
	var roots []int
	for r, row := range t.Rows {
		var pk key
		if iPStart >= 0 && row[iPStart] != nil {
			pk = key{num(row[iPPID]), num(row[iPStart])}
		}
		if row[iPStart] != nil && present[pk] && pk != (key{num(row[iPID]), num(row[iStart])}) {
			children[pk] = append(children[pk], r)
		} else {
			roots = append(roots, r)
		}
	}
	out := &Table{Columns: append([]Column{{Name: "depth", Kind: Int, Show: ShowJSON}}, t.Columns...)}
	out.Columns = append(out.Columns, Column{Name: "tree", Kind: display, Show: ShowText})
	for i := range out.Columns {
		if out.Columns[i].Name == "argv" || out.Columns[i].Name == "uid" {
			out.Columns[i].Show = ShowJSON
		}
	}
	iExe, iArgv := t.column("exe"), t.column("argv")
	seen := map[int]bool{}
	var walk func(r, depth int)
	walk = func(r, depth int) {
		if seen[r] {
			return
		}
		seen[r] = true
		row := t.Rows[r]
		label := ""
		if b, ok := row[iArgv].([]byte); ok && len(b) > 0 {
			label = FormatArgv(b)
		} else if b, ok := row[iExe].([]byte); ok {
			label = "[" + Safe(b) + "]"
		}
		nr := append([]any{int64(depth)}, row...)
		nr = append(nr, strings.Repeat("  ", depth)+label)
		out.Rows = append(out.Rows, nr)
		for _, c := range children[key{num(row[iPID]), num(row[iStart])}] {
			walk(c, depth+1)
		}
	}
	for _, r := range roots {
		walk(r, 0)
	}
	for r := range t.Rows { // cycles (pid reuse confusion): print them flat
		walk(r, 0)
	}
	return out
}

// Timeline returns host's process, file and socket rows in time order in r
// (timeline.sql); pid > 0 keeps only that pid's rows.
func (q *Querier) Timeline(ctx context.Context, host string, r Range, pid int) (*Table, error) {
	id, err := q.ResolveHost(ctx, host)
	if err != nil {
		return nil, err
	}
	var p any
	if pid > 0 {
		p = int64(pid)
	}
	return q.Run(ctx, "timeline", append([]Param{{"host", id}, {"pid", p}}, rangeParams(r)...)...)
}

// ParsePID parses PID or PID@START (START is proc_start, ns since boot).
func ParsePID(s string) (pid int, start *int64, err error) {
	p, st, ok := strings.Cut(s, "@")
	pid, err = strconv.Atoi(p)
	if err != nil || pid <= 0 {
		return 0, nil, fmt.Errorf("process %q: want PID or PID@START", s)
	}
	if ok {
		n, err := strconv.ParseInt(st, 10, 64)
		if err != nil || n < 0 {
			return 0, nil, fmt.Errorf("process %q: START must be the proc_start number", s)
		}
		start = &n
	}
	return pid, start, nil
}

// Proc returns one process life on host (proc.sql): its parent chain, its
// events, children, files and sockets. Without start it takes the newest life
// of pid and logs that others exist.
func (q *Querier) Proc(ctx context.Context, host string, pid int, start *int64) (*Table, error) {
	id, err := q.ResolveHost(ctx, host)
	if err != nil {
		return nil, err
	}
	var st any
	if start != nil {
		st = *start
	}
	lives, err := q.Run(ctx, "proc_lives", Param{"host", id}, Param{"pid", int64(pid)}, Param{"start", st})
	if err != nil {
		return nil, err
	}
	if len(lives.Rows) == 0 {
		return nil, fmt.Errorf("%w: pid %d on host %s", ErrNoProcess, pid, id)
	}
	boot := lives.Value(0, "boot_id")
	ps := lives.Value(0, "proc_start")
	if len(lives.Rows) > 1 {
		var others []string
		for r := 1; r < len(lives.Rows); r++ {
			others = append(others, fmt.Sprintf("%d@%v", pid, lives.Value(r, "proc_start")))
		}
		q.log().Info("pid has several recorded lives; showing the newest", "shown", fmt.Sprintf("%d@%v", pid, ps), "others", strings.Join(others, " "))
	}
	return q.Run(ctx, "proc", Param{"host", id}, Param{"boot", boot}, Param{"pid", int64(pid)}, Param{"start", ps})
}

// RanArgs selects exec rows for Ran. Empty fields do not filter.
type RanArgs struct {
	Host     string
	Range    Range
	User     string // name or uid: real, effective or login uid
	Exe      string // path, or base name without a slash
	ArgvLike string // SQL LIKE pattern on the command line
	SHA256   string // SHA-256 of the executed file, 64 hex digits
	// Container is a container name or Kubernetes pod name (containers table).
	Container string
}

// ErrSHA256 reports a --sha256 that is not 64 hexadecimal digits.
var ErrSHA256 = errors.New("query: sha256 must be 64 hexadecimal digits")

// optSHA256 parses a hex SHA-256 ("" is no filter).
func optSHA256(s string) (any, error) {
	if s == "" {
		return nil, nil
	}
	b, err := hex.DecodeString(s)
	if err != nil || len(b) != sha256.Size {
		return nil, fmt.Errorf("%w: %q", ErrSHA256, s)
	}
	return b, nil
}

// hostSHA256 binds @host (a host id or hostname, "" for every host) and
// @sha256 (64 hex digits, "" for any).
func (q *Querier) hostSHA256(ctx context.Context, host, sum string) ([]Param, error) {
	h, err := q.optHost(ctx, host)
	if err != nil {
		return nil, err
	}
	b, err := optSHA256(sum)
	if err != nil {
		return nil, err
	}
	return []Param{{"host", h}, {"sha256", b}}, nil
}

// Ran lists execs fleet-wide (ran.sql).
func (q *Querier) Ran(ctx context.Context, a RanArgs) (*Table, error) {
	ps, err := q.hostSHA256(ctx, a.Host, a.SHA256)
	if err != nil {
		return nil, err
	}
	ps = append(ps, Param{"exe", optString(a.Exe)}, Param{"argv_like", optString(a.ArgvLike)}, Param{"container", optBytes(a.Container)})
	ps = append(ps, userParams(a.User)...)
	return q.Run(ctx, "ran", append(ps, rangeParams(a.Range)...)...)
}

// LoginsArgs selects login rows for Logins. Empty fields do not filter.
type LoginsArgs struct {
	Host   string
	Range  Range
	Failed bool   // failed logins (btmp) only
	User   string // user name exactly as recorded
	FromIP string // address or CIDR block of the remote end
}

// Logins lists logins, logouts and failed logins (logins.sql).
func (q *Querier) Logins(ctx context.Context, a LoginsArgs) (*Table, error) {
	h, err := q.optHost(ctx, a.Host)
	if err != nil {
		return nil, err
	}
	rp, err := remoteParams(a.FromIP)
	if err != nil {
		return nil, err
	}
	var failed, user any
	if a.Failed {
		failed = int64(1)
	}
	if a.User != "" {
		user = []byte(a.User)
	}
	ps := append([]Param{{"host", h}, {"failed", failed}, {"user", user}}, rp...)
	return q.Run(ctx, "logins", append(ps, rangeParams(a.Range)...)...)
}

// BinariesArgs selects executables for Binaries. Empty fields do not filter.
type BinariesArgs struct {
	Host   string
	Range  Range
	SHA256 string // 64 hex digits
}

// Binaries lists every distinct executable file a host ran, first seen
// first (binaries.sql).
func (q *Querier) Binaries(ctx context.Context, a BinariesArgs) (*Table, error) {
	ps, err := q.hostSHA256(ctx, a.Host, a.SHA256)
	if err != nil {
		return nil, err
	}
	return q.Run(ctx, "binaries", append(ps, rangeParams(a.Range)...)...)
}

// TouchedArgs selects file rows for Touched.
type TouchedArgs struct {
	// Path is an exact path, or a directory ending in / for everything
	// under it.
	Path  string
	Host  string
	Range Range
	Op    string
	Exe   string
}

// Touched lists the processes that accessed a path or anything under a
// directory (touched.sql).
func (q *Querier) Touched(ctx context.Context, a TouchedArgs) (*Table, error) {
	h, err := q.optHost(ctx, a.Host)
	if err != nil {
		return nil, err
	}
	var prefix any
	if strings.HasSuffix(a.Path, "/") {
		prefix = []byte(likeEscape(a.Path) + "%")
	}
	ps := []Param{{"path", []byte(a.Path)}, {"prefix", prefix}, {"host", h}, {"op", optString(a.Op)}, {"exe", optString(a.Exe)}}
	return q.Run(ctx, "touched", append(ps, rangeParams(a.Range)...)...)
}

// likeEscape escapes LIKE's wildcards and escape character.
func likeEscape(s string) string {
	return strings.NewReplacer(`\`, `\\`, `%`, `\%`, `_`, `\_`).Replace(s)
}

// Listening chooses which sockets Conns shows.
type Listening string

// The sockets Conns shows; other values show connected sockets.
const (
	ListeningConnected Listening = ""     // connected sockets
	ListeningOnly      Listening = "only" // listeners only
	ListeningAll       Listening = "all"  // both
)

// ConnsArgs selects sockets for Conns. Zero fields do not filter.
type ConnsArgs struct {
	Host  string
	Range Range
	// Remote is an address or a CIDR block of the remote end.
	Remote string
	// Ports match the local or the remote port.
	Ports []int
	// Listening chooses connected sockets (the zero value), listeners or both.
	Listening Listening
	// Hours is a time-of-day window in each host's local time ("1-4").
	Hours   string
	User    string
	Exe     string
	Country string // ISO 3166 code of the remote end; needs Enrich.Geo
	// Container is the owner's container name or Kubernetes pod name.
	Container string
}

// Conns lists network endpoints with their owning process (conns.sql), one
// row per socket, with reverse DNS and geolocation columns when q.Enrich
// provides them.
func (q *Querier) Conns(ctx context.Context, a ConnsArgs) (*Table, error) {
	if a.Country != "" && (q.Enrich == nil || q.Enrich.Geo == nil) {
		return nil, fmt.Errorf("conns --country needs a geolocation database (--geoip FILE)")
	}
	h, err := q.optHost(ctx, a.Host)
	if err != nil {
		return nil, err
	}
	ps := []Param{{"host", h}, {"exe", optString(a.Exe)}, {"container", optBytes(a.Container)}}
	ps = append(ps, userParams(a.User)...)
	ps = append(ps, rangeParams(a.Range)...)
	rp, err := remoteParams(a.Remote)
	if err != nil {
		return nil, err
	}
	ps = append(ps, rp...)
	var ports any
	if len(a.Ports) > 0 {
		s := make([]string, len(a.Ports))
		for i, p := range a.Ports {
			s[i] = strconv.Itoa(p)
		}
		ports = strings.Join(s, ",")
	}
	ps = append(ps, Param{"ports", ports})
	var listening any = int64(0)
	switch a.Listening {
	case ListeningOnly:
		listening = int64(1)
	case ListeningAll:
		listening = nil
	}
	ps = append(ps, Param{"listening", listening})
	var hf, ht any
	if a.Hours != "" {
		f, t, err := ParseHours(a.Hours)
		if err != nil {
			return nil, err
		}
		hf, ht = int64(f), int64(t%24)
		if t == 24 && f == 0 {
			hf, ht = nil, nil
		}
	}
	ps = append(ps, Param{"hour_from", hf}, Param{"hour_to", ht})
	t, err := q.Run(ctx, "conns", ps...)
	if err != nil {
		return nil, err
	}
	t.dropColumns("cookie")
	if q.Enrich != nil {
		q.Enrich.Apply(ctx, t, "remote_addr")
		if a.Country != "" {
			i := t.column("country")
			t.Rows = slices.DeleteFunc(t.Rows, func(row []any) bool {
				c, _ := row[i].(string)
				return !strings.EqualFold(c, a.Country)
			})
		}
	}
	return t, nil
}

// remoteParams are @remote, @lo4, @hi4, @lo6, @hi6 for an address or CIDR.
func remoteParams(s string) ([]Param, error) {
	ps := []Param{{"remote", nil}, {"lo4", nil}, {"hi4", nil}, {"lo6", nil}, {"hi6", nil}}
	if s == "" {
		return ps, nil
	}
	var pfx netip.Prefix
	if strings.Contains(s, "/") {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return nil, fmt.Errorf("--remote %q: %w", s, err)
		}
		pfx = p.Masked()
	} else {
		a, err := netip.ParseAddr(s)
		if err != nil {
			return nil, fmt.Errorf("--remote %q: %w", s, err)
		}
		pfx = netip.PrefixFrom(a, a.BitLen())
	}
	if pfx.Addr().Is4In6() {
		pfx = netip.PrefixFrom(pfx.Addr().Unmap(), max(pfx.Bits()-96, 0))
	}
	lo, hi := prefixRange(pfx)
	ps[0].Value = s
	if pfx.Addr().Is4() {
		ps[1].Value, ps[2].Value = lo, hi
		lo6, hi6 := prefixRange(netip.PrefixFrom(netip.AddrFrom16(pfx.Addr().As16()), pfx.Bits()+96))
		ps[3].Value, ps[4].Value = lo6, hi6
	} else {
		ps[3].Value, ps[4].Value = lo, hi
	}
	return ps, nil
}

// prefixRange returns the first and last address of p as bytes.
func prefixRange(p netip.Prefix) (lo, hi []byte) {
	lo = p.Masked().Addr().AsSlice()
	hi = append([]byte{}, lo...)
	for bit := p.Bits(); bit < len(hi)*8; bit++ {
		hi[bit/8] |= 0x80 >> (bit % 8)
	}
	return lo, hi
}

// PeersArgs selects connections for Peers.
type PeersArgs struct {
	Host  string
	Range Range
	// Slack is the clock skew allowed between hosts (default 5 s).
	Slack time.Duration
}

// Peers lists connections between monitored hosts with the process on both
// ends (peers.sql).
func (q *Querier) Peers(ctx context.Context, a PeersArgs) (*Table, error) {
	h, err := q.optHost(ctx, a.Host)
	if err != nil {
		return nil, err
	}
	slack := a.Slack
	if slack <= 0 {
		slack = 5 * time.Second
	}
	ps := append([]Param{{"host", h}, {"slack", int64(slack.Round(time.Second) / time.Second)}}, rangeParams(a.Range)...)
	return q.Run(ctx, "peers", ps...)
}
