package alert

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"
	"unicode/utf8"
)

// Alert is one match of a rule, as the sinks receive it (JSON).
type Alert struct {
	Rule     string            `json:"rule"`
	Kind     string            `json:"kind"`
	Severity string            `json:"severity"`
	Key      string            `json:"key"`            // what makes the match this match
	Host     string            `json:"host,omitempty"` // the host it is about, if any
	Time     time.Time         `json:"time"`           // when it fired (UTC)
	Summary  string            `json:"summary"`
	Fields   map[string]string `json:"fields,omitempty"`
}

// SendGrace bounds the delivery of one claimed alert to all sinks; it goes
// on after the run is cancelled.
const SendGrace = time.Minute

// MaxMatches bounds the matches one rule fires in one run; the rest wait
// for the next run.
const MaxMatches = 1000

// Runner evaluates rules against a database and fires new matches.
type Runner struct {
	DB    *sql.DB
	Rules []Rule
	Sinks []Sender
	Log   *slog.Logger
	// Now is the clock (time.Now if nil).
	Now func() time.Time
}

// Summary counts one run.
type Summary struct {
	Matches int // matches found
	Fired   int // new, claimed and sent to at least one sink
	Failed  int // new but no sink took them (claim released)
}

// Run evaluates every rule once and fires each match not fired before.
// A rule whose query fails is logged and skipped; the error returned joins
// them.
func (r *Runner) Run(ctx context.Context) (Summary, error) {
	var sum Summary
	var errs []error
	for _, rule := range r.Rules {
		matches, err := r.matches(ctx, rule)
		if err != nil {
			r.log().Error("alert rule failed", "rule", rule.Name, "err", err)
			errs = append(errs, fmt.Errorf("rule %s: %w", rule.Name, err))
			continue
		}
		sum.Matches += len(matches)
		for _, a := range matches {
			fired, err := r.fire(ctx, a)
			if err != nil {
				errs = append(errs, fmt.Errorf("rule %s: %w", rule.Name, err))
				if fired {
					continue
				}
				sum.Failed++
				continue
			}
			if fired {
				sum.Fired++
			}
		}
	}
	return sum, errors.Join(errs...)
}

// Watch runs every interval until ctx ends.
func (r *Runner) Watch(ctx context.Context, every time.Duration) error {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		sum, err := r.Run(ctx)
		if ctx.Err() != nil {
			return ctx.Err()
		}
		r.log().Info("alert pass", "matches", sum.Matches, "fired", sum.Fired, "failed", sum.Failed, "err", err)
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
	}
}

func (r *Runner) log() *slog.Logger {
	if r.Log == nil {
		return slog.New(slog.DiscardHandler)
	}
	return r.Log
}

func (r *Runner) now() time.Time {
	if r.Now == nil {
		return time.Now().UTC()
	}
	return r.Now().UTC()
}

// fire claims a (insert into alerts_fired) and sends it to every sink. It
// returns false without error when another run claimed it first. When no
// sink took it, the claim is deleted so that the next run tries again.
func (r *Runner) fire(ctx context.Context, a Alert) (bool, error) {
	h := sha256.Sum256([]byte(a.Key))
	text := a.Key
	if len(text) > 1024 {
		text = text[:1024]
	}
	res, err := r.DB.ExecContext(ctx, `INSERT IGNORE INTO alerts_fired (rule, match_key, match_text, fired_at) VALUES (?, ?, ?, ?)`,
		a.Rule, h[:], text, a.Time)
	if err != nil {
		return false, fmt.Errorf("claim alert: %w", err)
	}
	if n, err := res.RowsAffected(); err != nil || n == 0 {
		return false, err // fired before (here or by another server)
	}
	// A claimed alert is delivered even if ctx ends meanwhile (SIGTERM in
	// --watch): cancelling a send the receiver may already have taken would
	// release the claim and fire the alert again after the restart.
	sendCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), SendGrace)
	defer cancel()
	var errs []error
	sent := 0
	for _, s := range r.Sinks {
		if err := s.Send(sendCtx, a); err != nil {
			r.log().Warn("alert sink failed", "rule", a.Rule, "sink", s.String(), "err", err)
			errs = append(errs, fmt.Errorf("%s: %w", s, err))
			continue
		}
		sent++
	}
	if sent == 0 && len(r.Sinks) > 0 {
		if _, err := r.DB.ExecContext(context.WithoutCancel(ctx), `DELETE FROM alerts_fired WHERE rule = ? AND match_key = ?`, a.Rule, h[:]); err != nil {
			errs = append(errs, fmt.Errorf("release claim: %w", err))
		}
		return false, errors.Join(errs...)
	}
	r.log().Info("alert fired", "rule", a.Rule, "key", a.Key, "sinks", sent)
	return true, errors.Join(errs...)
}

// matches returns the current matches of rule.
func (r *Runner) matches(ctx context.Context, rule Rule) ([]Alert, error) {
	now := r.now()
	mk := func(key, host, summary string, fields map[string]string) Alert {
		return Alert{Rule: rule.Name, Kind: rule.Kind, Severity: rule.severity(), Key: key, Host: host, Time: now, Summary: summary, Fields: fields}
	}
	var out []Alert
	switch rule.Kind {
	case KindHostSilent:
		cutoff := now.Add(-time.Duration(rule.After))
		err := r.rows(ctx, `SELECT host_id, last_seen FROM hosts WHERE status = 'active' AND last_seen IS NOT NULL AND last_seen < ? ORDER BY host_id LIMIT ?`,
			[]any{cutoff, MaxMatches}, func(c map[string]string) {
				// The key holds last_seen: a host that comes back and goes
				// silent again fires again.
				out = append(out, mk(c["host_id"]+" "+c["last_seen"], c["host_id"],
					fmt.Sprintf("host %s silent since %s (longer than %s)", c["host_id"], c["last_seen"], time.Duration(rule.After)), c))
			})
		return out, err
	case KindGap:
		q, args := `SELECT segment_id, row_no, host_id, from_ts, to_ts, COALESCE(source, '') AS source, COALESCE(lost, '') AS lost, COALESCE(reason, '') AS reason FROM gaps`, []any{}
		q, args = whereIn(q, "source", rule.Reasons, args)
		q += ` ORDER BY segment_id, row_no LIMIT ?`
		err := r.rows(ctx, q, append(args, MaxMatches), func(c map[string]string) {
			out = append(out, mk("gap "+c["segment_id"]+"/"+c["row_no"], c["host_id"],
				fmt.Sprintf("gap on %s (%s) from %s to %s: %s", c["host_id"], c["source"], c["from_ts"], c["to_ts"], c["reason"]), c))
		})
		return out, err
	case KindChainBreak:
		err := r.rows(ctx, `SELECT segment_id, host_id, seq, file_name FROM segments WHERE chain_ok = 0 ORDER BY segment_id LIMIT ?`,
			[]any{MaxMatches}, func(c map[string]string) {
				out = append(out, mk("segment "+c["segment_id"], c["host_id"],
					fmt.Sprintf("hash chain broken at %s seq %s", c["host_id"], c["seq"]), c))
			})
		return out, err
	case KindQuarantine:
		q, args := `SELECT quarantine_id, host_id, file, class, COALESCE(reason, '') AS reason FROM quarantine`, []any{}
		q, args = whereIn(q, "class", rule.Reasons, args)
		q += ` ORDER BY quarantine_id LIMIT ?`
		err := r.rows(ctx, q, append(args, MaxMatches), func(c map[string]string) {
			out = append(out, mk("quarantine "+c["quarantine_id"], c["host_id"],
				fmt.Sprintf("segment of %s quarantined (%s): %s", c["host_id"], c["class"], c["reason"]), c))
		})
		return out, err
	case KindRevokedHost:
		err := r.rows(ctx, `SELECT host_id, COALESCE(hostname, '') AS hostname FROM hosts WHERE status = 'revoked' ORDER BY host_id LIMIT ?`,
			[]any{MaxMatches}, func(c map[string]string) {
				out = append(out, mk("host "+c["host_id"], c["host_id"], fmt.Sprintf("host %s (%s) is revoked", c["host_id"], c["hostname"]), c))
			})
		return out, err
	case KindSQL:
		return r.sqlMatches(ctx, rule, mk)
	}
	return nil, fmt.Errorf("unknown kind %q", rule.Kind)
}

// sqlMatches runs a saved query in a read-only transaction.
func (r *Runner) sqlMatches(ctx context.Context, rule Rule, mk func(key, host, summary string, fields map[string]string) Alert) ([]Alert, error) {
	tx, err := r.DB.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return nil, err
	}
	defer tx.Rollback()
	rs, err := tx.QueryContext(ctx, rule.Query)
	if err != nil {
		return nil, err
	}
	var out []Alert
	err = scan(rs, func(c map[string]string, cols []string) bool {
		key, ok := c["alert_key"]
		if !ok {
			parts := make([]string, len(cols))
			for i, col := range cols {
				parts[i] = col + "=" + c[col]
			}
			key = strings.Join(parts, " ")
		}
		out = append(out, mk(key, c["host_id"], fmt.Sprintf("%s: %s", rule.Name, key), c))
		return len(out) < MaxMatches
	})
	return out, err
}

// whereIn adds "WHERE col IN (?, …)" when vals is not empty.
func whereIn(q, col string, vals []string, args []any) (string, []any) {
	if len(vals) == 0 {
		return q, args
	}
	q += " WHERE " + col + " IN (" + strings.TrimSuffix(strings.Repeat("?, ", len(vals)), ", ") + ")"
	for _, v := range vals {
		args = append(args, v)
	}
	return q, args
}

func (r *Runner) rows(ctx context.Context, q string, args []any, row func(map[string]string)) error {
	rs, err := r.DB.QueryContext(ctx, q, args...)
	if err != nil {
		return err
	}
	return scan(rs, func(c map[string]string, _ []string) bool { row(c); return true })
}

// scan reads every row of rs as column → text (bytes that are not UTF-8
// are shown as Go-quoted text; NULL as "").
func scan(rs *sql.Rows, row func(map[string]string, []string) bool) error {
	defer rs.Close()
	cols, err := rs.Columns()
	if err != nil {
		return err
	}
	vals := make([]any, len(cols))
	ptrs := make([]any, len(cols))
	for i := range vals {
		ptrs[i] = &vals[i]
	}
	for rs.Next() {
		if err := rs.Scan(ptrs...); err != nil {
			return err
		}
		m := make(map[string]string, len(cols))
		for i, c := range cols {
			m[c] = text(vals[i])
		}
		if !row(m, cols) {
			break
		}
	}
	return rs.Err()
}

// text renders a scanned value: times in RFC 3339 UTC, bytes as text
// (Go-quoted if they are not UTF-8), NULL as "".
func text(v any) string {
	switch v := v.(type) {
	case nil:
		return ""
	case time.Time:
		return v.UTC().Format(time.RFC3339Nano)
	case []byte:
		if utf8.Valid(v) {
			return string(v)
		}
		return strings.Trim(fmt.Sprintf("%q", v), `"`)
	default:
		return fmt.Sprint(v)
	}
}
