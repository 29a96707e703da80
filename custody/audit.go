package custody

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/pofr/pofr/internal/registry"
	"github.com/pofr/pofr/internal/statedir"
	"github.com/pofr/pofr/spool"
)

// Kind names what a [Finding] is about.
type Kind string

// Finding kinds of an audit. Those marked "problem" make [AuditReport.Problems]
// count; the others are information an auditor wants to see.
const (
	// FindHole (problem): sequence numbers missing from the ledger that
	// nothing explains (not declared evicted, not waiting in the inbox).
	FindHole Kind = "hole"
	// FindEvicted: missing sequence numbers that the host declared evicted
	// by its spool quota (a gap row of source spool in a later segment).
	FindEvicted Kind = "evicted"
	// FindPending: missing sequence numbers whose files wait in the inbox.
	FindPending Kind = "pending"
	// FindChainBreak (problem): prev_digest is not the digest of the loaded
	// segment seq-1.
	FindChainBreak Kind = "chain_break"
	// FindChainMismatch (problem): the ledger's chain_ok says otherwise than
	// its own digests (the ledger was edited, or a bug).
	FindChainMismatch Kind = "chain_mismatch"
	// FindSettled: chain_ok was NULL and its predecessor is loaded: settled
	// now (written unless AuditOptions.NoSettle).
	FindSettled Kind = "settled"
	// FindUnverifiable: chain_ok is NULL because seq-1 is not in the ledger
	// (the hole before it is reported on its own).
	FindUnverifiable Kind = "unverifiable"
	// FindArchiveMissing (problem): the ledger row's archived file is gone
	// and retention did not remove it.
	FindArchiveMissing Kind = "archive_missing"
	// FindArchiveBad (problem): the archived file fails verification against
	// the host's registered key (signature, member digests, host, format).
	FindArchiveBad Kind = "archive_bad"
	// FindArchiveDigest (problem): the archived file verifies but is not the
	// segment the ledger recorded (another digest).
	FindArchiveDigest Kind = "archive_digest"
	// FindArchiveExtra (problem): a file in the archive without a ledger row.
	FindArchiveExtra Kind = "archive_extra"
	// FindArchiveUnarchived: loaded, but its file is still in the inbox (the
	// next load pass archives it).
	FindArchiveUnarchived Kind = "unarchived"
	// FindNoKey (problem): --archive, but the host has no usable signing key
	// in the registry.
	FindNoKey Kind = "no_key"
	// FindRowsDiffer (problem): --rows, and the rows the database holds for
	// a loaded segment are not the rows of its archived file (changed,
	// deleted, or added under it).
	FindRowsDiffer Kind = "rows_differ"
	// FindRowsExpired: --rows, and rows of the segment older than the
	// oldest day partition are gone: retention may have dropped them.
	FindRowsExpired Kind = "rows_expired"
	// FindFork (problem): another validly signed segment claimed the seq of
	// a loaded one with another digest (the loader quarantined it as class
	// fork): the host's chain forks.
	FindFork Kind = "fork"
)

var problemKinds = map[Kind]bool{
	FindHole: true, FindChainBreak: true, FindChainMismatch: true, FindArchiveMissing: true,
	FindArchiveBad: true, FindArchiveDigest: true, FindArchiveExtra: true, FindNoKey: true, FindRowsDiffer: true,
	FindFork: true,
}

// IsProblem reports whether a finding kind is a custody problem.
func IsProblem(kind Kind) bool { return problemKinds[kind] }

// Finding is one observation of an audit about a host's ledger or archive.
type Finding struct {
	Host    string `json:"host"`
	Kind    Kind   `json:"kind"`
	FromSeq uint64 `json:"from_seq"`       // first sequence number concerned
	ToSeq   uint64 `json:"to_seq"`         // last (equal to FromSeq for one segment)
	File    string `json:"file,omitempty"` // segment file name, if one is concerned
	Detail  string `json:"detail,omitempty"`
	Problem bool   `json:"problem"`
}

// HostAudit is the audit of one host.
type HostAudit struct {
	Host        string    `json:"host"`
	Segments    int       `json:"segments"`  // ledger rows
	FirstSeq    uint64    `json:"first_seq"` // 0 if no rows
	LastSeq     uint64    `json:"last_seq"`
	Holes       uint64    `json:"holes"`   // sequence numbers missing, unexplained
	Evicted     uint64    `json:"evicted"` // missing, declared evicted by the host
	Pending     uint64    `json:"pending"` // missing, waiting in the inbox
	ChainBreaks int       `json:"chain_breaks"`
	Settled     int       `json:"settled"`      // chain_ok settled by this audit
	Unverified  int       `json:"unverifiable"` // chain_ok NULL: predecessor not loaded
	Archive     *Archived `json:"archive,omitempty"`
	Findings    []Finding `json:"findings"`
}

// Archived counts the archive check of one host.
type Archived struct {
	OK      int `json:"ok"`      // file verified, digest equals the ledger's
	Expired int `json:"expired"` // removed by retention (segments.archive_removed_at)
	Bad     int `json:"bad"`     // missing, failing verification, another digest, or without ledger row
	// With AuditOptions.Rows: segments whose rows in the database equal
	// their file's, and those whose rows differ.
	RowsOK  int `json:"rows_ok"`
	RowsBad int `json:"rows_bad"`
}

// Problems counts the host's findings that are problems.
func (h *HostAudit) Problems() int {
	n := 0
	for _, f := range h.Findings {
		if f.Problem {
			n++
		}
	}
	return n
}

// AuditReport is the result of [Audit].
type AuditReport struct {
	Hosts   []*HostAudit  `json:"hosts"`
	Elapsed time.Duration `json:"elapsed_ns"`
}

// Problems counts the findings that are problems, over all hosts.
func (r *AuditReport) Problems() int {
	n := 0
	for _, h := range r.Hosts {
		n += h.Problems()
	}
	return n
}

// RowsChecker compares the rows the database holds for a loaded segment
// (ledger row segmentID) with the rows of the verified segment file: it
// describes each table whose rows differ, and each whose rows are partly
// gone with partitions that retention dropped. loader.CheckRows is one.
type RowsChecker func(ctx context.Context, db *sql.DB, seg *spool.Segment, segmentID uint64) (differ, expired []string, err error)

// AuditOptions configure [Audit].
type AuditOptions struct {
	// Host limits the audit to one host; "" audits every host in the ledger
	// (and, with Archive, every host with an archive directory).
	Host string
	// StateDir is the server's state directory: the inbox explains holes,
	// the registry has the keys and the archive the files. "" skips both.
	StateDir statedir.Dir
	// Registry has the hosts' signing keys; default: the files under
	// StateDir.
	Registry registry.Store
	// Archive re-verifies every archived segment file against the host's
	// registered signing key and the ledger's digest. Needs StateDir.
	Archive bool
	// Rows, if set, (implies Archive) also compares the rows the database
	// holds for each segment whose archived file verified with the file's
	// rows: pofr-server verify --rows sets loader.CheckRows, which compares
	// every column of every row.
	Rows RowsChecker
	// NoSettle reports the chain_ok values that can be settled without
	// writing them (for a read-only account).
	NoSettle bool
	// MaxSegmentBytes is the size limit for archived files (default
	// spool.DefaultMaxSize).
	MaxSegmentBytes int64
	// Log gets a line per problem at Warn; nil discards.
	Log *slog.Logger
}

// Audit walks the custody ledger (segments) of each host in seq order and
// reports: holes in seq (split into unexplained holes, seqs the host declared
// evicted by its spool quota, and seqs waiting in the inbox); chain breaks
// (prev_digest is not the digest of the loaded seq-1); chain_ok values that
// disagree with the ledger's own digests; and chain_ok NULL rows whose
// predecessor is now loaded, which it settles (unless NoSettle). With
// Archive it re-verifies each archived file (signature and member digests
// against the registry's key, and the manifest digest against the ledger).
//
// The error is about the audit as a whole (database, state directory);
// what is wrong with the evidence is in the report.
func Audit(ctx context.Context, db *sql.DB, opt AuditOptions) (*AuditReport, error) {
	start := time.Now()
	if opt.Rows != nil {
		opt.Archive = true
	}
	if opt.Archive && opt.StateDir == "" {
		return nil, errors.New("audit: the archive check needs the state directory")
	}
	if opt.MaxSegmentBytes <= 0 {
		opt.MaxSegmentBytes = spool.DefaultMaxSize
	}
	if opt.Log == nil {
		opt.Log = slog.New(slog.DiscardHandler)
	}
	hosts, err := auditHosts(ctx, db, opt)
	if err != nil {
		return nil, err
	}
	rep := &AuditReport{}
	for _, h := range hosts {
		ha, err := auditHost(ctx, db, opt, h)
		if err != nil {
			return nil, err
		}
		for _, f := range ha.Findings {
			if f.Problem {
				opt.Log.Warn("custody problem", "host", f.Host, "kind", f.Kind, "from_seq", f.FromSeq, "to_seq", f.ToSeq, "file", f.File, "detail", f.Detail)
			}
		}
		rep.Hosts = append(rep.Hosts, ha)
	}
	rep.Elapsed = time.Since(start)
	return rep, nil
}

// auditHosts lists the hosts to audit.
func auditHosts(ctx context.Context, db *sql.DB, opt AuditOptions) ([]string, error) {
	if opt.Host != "" {
		if !spool.ValidHostID(opt.Host) {
			return nil, fmt.Errorf("audit: invalid host id %q", opt.Host)
		}
		return []string{opt.Host}, nil
	}
	rows, err := db.QueryContext(ctx, "SELECT DISTINCT host_id FROM segments ORDER BY host_id")
	if err != nil {
		return nil, fmt.Errorf("audit: list hosts: %w", err)
	}
	defer rows.Close()
	var hosts []string
	for rows.Next() {
		var h string
		if err := rows.Scan(&h); err != nil {
			return nil, fmt.Errorf("audit: list hosts: %w", err)
		}
		hosts = append(hosts, h)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("audit: list hosts: %w", err)
	}
	if opt.Archive {
		ents, err := statedir.ReadDir(opt.StateDir.Archives())
		if err != nil {
			return nil, fmt.Errorf("audit: list archive: %w", err)
		}
		for _, e := range ents {
			if e.IsDir() && spool.ValidHostID(e.Name()) && !slices.Contains(hosts, e.Name()) {
				hosts = append(hosts, e.Name())
			}
		}
		slices.Sort(hosts)
	}
	return hosts, nil
}

// ledgerRow is what the audit reads of a segments row.
type ledgerRow struct {
	id       uint64
	seq      uint64
	digest   []byte
	prev     []byte
	chainOK  sql.NullBool
	file     string
	removed  sql.NullTime
	checkRes sql.NullBool // recomputed chain_ok (NULL: predecessor missing)
}

// interval is a closed range of sequence numbers with what explains it.
type interval struct {
	lo, hi uint64
	kind   Kind
	detail string
}

// auditHost audits one host.
func auditHost(ctx context.Context, db *sql.DB, opt AuditOptions, host string) (*HostAudit, error) {
	ha := &HostAudit{Host: host, Findings: []Finding{}}
	add := func(f Finding) {
		f.Host, f.Problem = host, IsProblem(f.Kind)
		ha.Findings = append(ha.Findings, f)
	}
	explained, err := explanations(ctx, db, opt, host)
	if err != nil {
		return nil, err
	}
	quarantined, err := quarantinedSeqs(ctx, db, host)
	if err != nil {
		return nil, err
	}

	rows, err := db.QueryContext(ctx, `SELECT segment_id, seq, digest, prev_digest, chain_ok, file_name, archive_removed_at
		FROM segments WHERE host_id = ? ORDER BY seq`, host)
	if err != nil {
		return nil, fmt.Errorf("audit %s: read ledger: %w", host, err)
	}
	var ledger []ledgerRow
	var prev *ledgerRow
	for rows.Next() {
		var r ledgerRow
		if err := rows.Scan(&r.id, &r.seq, &r.digest, &r.prev, &r.chainOK, &r.file, &r.removed); err != nil {
			rows.Close()
			return nil, fmt.Errorf("audit %s: read ledger: %w", host, err)
		}
		// Hole before this row?
		lo := uint64(1)
		if prev != nil {
			lo = prev.seq + 1
		}
		if r.seq > lo {
			for _, iv := range splitMissing(lo, r.seq-1, explained) {
				f := Finding{Kind: iv.kind, FromSeq: iv.lo, ToSeq: iv.hi, Detail: iv.detail}
				n := iv.hi - iv.lo + 1
				switch iv.kind {
				case FindHole:
					ha.Holes += n
					f.Detail = holeDetail(iv.lo, iv.hi, quarantined)
				case FindEvicted:
					ha.Evicted += n
				case FindPending:
					ha.Pending += n
				}
				add(f)
			}
		}
		// The chain link to seq-1, recomputed from the ledger's digests.
		switch {
		case r.seq == 1:
			r.checkRes = sql.NullBool{Bool: true, Valid: true}
		case prev != nil && prev.seq == r.seq-1:
			r.checkRes = sql.NullBool{Bool: bytes.Equal(r.prev, prev.digest), Valid: true}
		}
		switch {
		case !r.checkRes.Valid:
			ha.Unverified++
			add(Finding{Kind: FindUnverifiable, FromSeq: r.seq, ToSeq: r.seq, File: r.file, Detail: fmt.Sprintf("segment %d is not in the ledger", r.seq-1)})
		case !r.chainOK.Valid:
			ha.Settled++
			d := "links to its predecessor"
			if !r.checkRes.Bool {
				d = "does not link to its predecessor"
			}
			if opt.NoSettle {
				d += " (not written: --no-settle)"
			}
			add(Finding{Kind: FindSettled, FromSeq: r.seq, ToSeq: r.seq, File: r.file, Detail: d})
		case r.chainOK.Bool != r.checkRes.Bool:
			add(Finding{Kind: FindChainMismatch, FromSeq: r.seq, ToSeq: r.seq, File: r.file,
				Detail: fmt.Sprintf("ledger says chain_ok=%d, its digests say %d", b2i(r.chainOK.Bool), b2i(r.checkRes.Bool))})
		}
		if r.checkRes.Valid && !r.checkRes.Bool {
			ha.ChainBreaks++
			add(Finding{Kind: FindChainBreak, FromSeq: r.seq, ToSeq: r.seq, File: r.file,
				Detail: fmt.Sprintf("prev_digest %x, digest of segment %d is %x", r.prev, prev.seq, prev.digest)})
		}
		if n := countOf(quarantined[r.seq], "fork"); n > 0 {
			add(Finding{Kind: FindFork, FromSeq: r.seq, ToSeq: r.seq, File: r.file,
				Detail: fmt.Sprintf("%d other segment(s) with this seq and another digest quarantined (class fork)", n)})
		}
		ledger = append(ledger, r)
		prev = &ledger[len(ledger)-1]
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("audit %s: read ledger: %w", host, err)
	}
	ha.Segments = len(ledger)
	if len(ledger) > 0 {
		ha.FirstSeq, ha.LastSeq = ledger[0].seq, ledger[len(ledger)-1].seq
	}
	// Files waiting beyond the last loaded seq are not holes: not loaded yet.
	for _, iv := range explained {
		if iv.kind == FindPending && iv.lo > ha.LastSeq {
			ha.Pending++
		}
	}

	if !opt.NoSettle {
		for _, r := range ledger {
			if r.chainOK.Valid || !r.checkRes.Valid {
				continue
			}
			if _, err := db.ExecContext(ctx, "UPDATE segments SET chain_ok = ? WHERE segment_id = ? AND chain_ok IS NULL", r.checkRes.Bool, r.id); err != nil {
				return nil, fmt.Errorf("audit %s: settle chain_ok of seq %d: %w", host, r.seq, err)
			}
		}
	}
	if opt.Archive {
		ha.Archive = &Archived{}
		if err := auditArchive(ctx, db, opt, host, ledger, ha, add); err != nil {
			return nil, err
		}
	}
	slices.SortStableFunc(ha.Findings, func(a, b Finding) int {
		if a.FromSeq != b.FromSeq {
			if a.FromSeq < b.FromSeq {
				return -1
			}
			return 1
		}
		return strings.Compare(string(a.Kind), string(b.Kind))
	})
	return ha, nil
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}

// evictionRE matches the reason of the spool's eviction gap rows.
var evictionRE = regexp.MustCompile(`quota eviction of segments? ([0-9]+)(?:-([0-9]+))?`)

// explanations returns the intervals of missing seqs that something
// explains: eviction gap rows the host sent, and files in the inbox.
func explanations(ctx context.Context, db *sql.DB, opt AuditOptions, host string) ([]interval, error) {
	var out []interval
	rows, err := db.QueryContext(ctx, "SELECT g.reason, s.seq FROM gaps g JOIN segments s ON s.segment_id = g.segment_id WHERE g.host_id = ? AND g.source = 'spool'", host)
	if err != nil {
		return nil, fmt.Errorf("audit %s: read gaps: %w", host, err)
	}
	for rows.Next() {
		var reason []byte
		var seq uint64
		if err := rows.Scan(&reason, &seq); err != nil {
			rows.Close()
			return nil, fmt.Errorf("audit %s: read gaps: %w", host, err)
		}
		m := evictionRE.FindSubmatch(reason)
		if m == nil {
			continue
		}
		lo, err1 := strconv.ParseUint(string(m[1]), 10, 64)
		hi, err2 := lo, error(nil)
		if len(m[2]) > 0 {
			hi, err2 = strconv.ParseUint(string(m[2]), 10, 64)
		}
		if err1 != nil || err2 != nil || hi < lo {
			continue
		}
		out = append(out, interval{lo: lo, hi: hi, kind: FindEvicted, detail: fmt.Sprintf("declared by the host in segment %d: %s", seq, reason)})
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("audit %s: read gaps: %w", host, err)
	}
	if opt.StateDir != "" {
		ents, err := statedir.ReadDir(opt.StateDir.Host(host).Inbox)
		if err != nil {
			return nil, fmt.Errorf("audit %s: list inbox: %w", host, err)
		}
		for _, e := range ents {
			if h, seq, _, ok := spool.ParseName(e.Name()); ok && h == host {
				out = append(out, interval{lo: seq, hi: seq, kind: FindPending, detail: "in the inbox: " + e.Name()})
			}
		}
	}
	slices.SortFunc(out, func(a, b interval) int {
		switch {
		case a.lo < b.lo:
			return -1
		case a.lo > b.lo:
			return 1
		}
		return 0
	})
	return out, nil
}

// splitMissing splits the missing range [lo, hi] into explained intervals
// and unexplained holes. explained is sorted by lo.
func splitMissing(lo, hi uint64, explained []interval) []interval {
	var out []interval
	next := lo
	for _, e := range explained {
		if e.hi < next || e.lo > hi {
			continue
		}
		if e.lo > next {
			out = append(out, interval{lo: next, hi: e.lo - 1, kind: FindHole})
			next = e.lo
		}
		end := min(e.hi, hi)
		if n := len(out); e.kind == FindPending && n > 0 && out[n-1].kind == FindPending && out[n-1].hi+1 == next {
			out[n-1].hi, out[n-1].detail = end, "in the inbox"
		} else {
			out = append(out, interval{lo: next, hi: end, kind: e.kind, detail: e.detail})
		}
		if end == hi {
			return out
		}
		next = end + 1
	}
	return append(out, interval{lo: next, hi: hi, kind: FindHole})
}

// quarantinedSeqs maps seq to the quarantine classes of the host's refused
// segments whose manifest could be read.
func quarantinedSeqs(ctx context.Context, db *sql.DB, host string) (map[uint64][]string, error) {
	rows, err := db.QueryContext(ctx, "SELECT seq, class FROM quarantine WHERE host_id = ? AND seq IS NOT NULL ORDER BY quarantine_id", host)
	if err != nil {
		return nil, fmt.Errorf("audit %s: read quarantine: %w", host, err)
	}
	defer rows.Close()
	out := map[uint64][]string{}
	for rows.Next() {
		var seq uint64
		var class string
		if err := rows.Scan(&seq, &class); err != nil {
			return nil, fmt.Errorf("audit %s: read quarantine: %w", host, err)
		}
		out[seq] = append(out[seq], class)
	}
	return out, rows.Err()
}

// holeDetail says which seqs of a hole were quarantined.
func holeDetail(lo, hi uint64, quarantined map[uint64][]string) string {
	var parts []string
	for seq, classes := range quarantined {
		if seq >= lo && seq <= hi {
			parts = append(parts, fmt.Sprintf("%d (%s)", seq, strings.Join(classes, ", ")))
		}
	}
	if len(parts) == 0 {
		return "never loaded"
	}
	slices.Sort(parts)
	return "never loaded; quarantined: " + strings.Join(parts, "; ")
}

// auditArchive re-verifies the host's archived files.
func auditArchive(ctx context.Context, db *sql.DB, opt AuditOptions, host string, ledger []ledgerRow, ha *HostAudit, add func(Finding)) error {
	dirs := opt.StateDir.Host(host)
	var pub ed25519.PublicKey
	reg := opt.Registry
	if reg == nil {
		reg = registry.NewFiles(opt.StateDir)
	}
	h, err := reg.Host(host)
	if err == nil {
		pub, err = h.SigningPublicKey()
	}
	if err != nil {
		add(Finding{Kind: FindNoKey, Detail: err.Error()})
	}
	inLedger := make(map[string]bool, len(ledger))
	for _, r := range ledger {
		inLedger[r.file] = true
		path := filepath.Join(dirs.Archive, r.file)
		_, err := os.Stat(path)
		if errors.Is(err, os.ErrNotExist) {
			switch {
			case r.removed.Valid:
				ha.Archive.Expired++
			case fileExists(filepath.Join(dirs.Inbox, r.file)):
				add(Finding{Kind: FindArchiveUnarchived, FromSeq: r.seq, ToSeq: r.seq, File: r.file, Detail: "loaded, still in the inbox"})
			default:
				ha.Archive.Bad++
				add(Finding{Kind: FindArchiveMissing, FromSeq: r.seq, ToSeq: r.seq, File: r.file, Detail: "not in " + dirs.Archive})
			}
			continue
		}
		if err != nil {
			return fmt.Errorf("audit %s: %w", host, err)
		}
		if pub == nil {
			ha.Archive.Bad++
			continue // FindNoKey said why
		}
		seg, err := spool.VerifyFile(path, spool.VerifyOptions{PublicKey: pub, HostID: host, MaxSize: opt.MaxSegmentBytes})
		switch {
		case err != nil:
			ha.Archive.Bad++
			add(Finding{Kind: FindArchiveBad, FromSeq: r.seq, ToSeq: r.seq, File: r.file, Detail: fmt.Sprintf("verify %s: %v", path, err)})
			continue
		case seg.Digest != hex.EncodeToString(r.digest):
			ha.Archive.Bad++
			add(Finding{Kind: FindArchiveDigest, FromSeq: r.seq, ToSeq: r.seq, File: r.file,
				Detail: fmt.Sprintf("file's digest %s, ledger's %x", seg.Digest, r.digest)})
		default:
			ha.Archive.OK++
			if opt.Rows != nil {
				err = auditRows(ctx, db, opt.Rows, seg, r, ha, add)
			}
		}
		seg.Release()
		if err != nil {
			return err
		}
	}
	ents, err := statedir.ReadDir(dirs.Archive)
	if err != nil {
		return fmt.Errorf("audit %s: list archive: %w", host, err)
	}
	for _, e := range ents {
		n := e.Name()
		if strings.HasPrefix(n, ".") || inLedger[n] {
			continue
		}
		_, seq, _, _ := spool.ParseName(n)
		ha.Archive.Bad++
		add(Finding{Kind: FindArchiveExtra, FromSeq: seq, ToSeq: seq, File: n, Detail: "in the archive, not in the ledger"})
	}
	return nil
}

// auditRows compares the database's rows of ledger row r with its verified
// archived file seg.
func auditRows(ctx context.Context, db *sql.DB, check RowsChecker, seg *spool.Segment, r ledgerRow, ha *HostAudit, add func(Finding)) error {
	bad, expired, err := check(ctx, db, seg, r.id)
	if err != nil {
		return fmt.Errorf("audit %s seq %d: %w", seg.Manifest.HostID, r.seq, err)
	}
	if len(bad) > 0 {
		ha.Archive.RowsBad++
		add(Finding{Kind: FindRowsDiffer, FromSeq: r.seq, ToSeq: r.seq, File: r.file, Detail: strings.Join(bad, "; ")})
	} else {
		ha.Archive.RowsOK++
	}
	if len(expired) > 0 {
		add(Finding{Kind: FindRowsExpired, FromSeq: r.seq, ToSeq: r.seq, File: r.file, Detail: strings.Join(expired, "; ")})
	}
	return nil
}

func fileExists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}

// countOf counts s in list.
func countOf(list []string, s string) int {
	n := 0
	for _, v := range list {
		if v == s {
			n++
		}
	}
	return n
}
