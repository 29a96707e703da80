package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"text/tabwriter"
	"time"

	"github.com/pofr/pofr/collector/agent"
	"github.com/pofr/pofr/internal/cli"
)

// exitNotRunning is status's exit code when no collector runs.
const exitNotRunning = 3

// statusCommand is 'status'.
func statusCommand() *cli.Command {
	var stateDir, spoolDir string
	var asJSON bool
	return &cli.Command{
		Name:    "status",
		Summary: "is the collector running: uptime, events/s per source, losses, backlog, last upload",
		Usage:   "[flags]",
		Help: `Prints whether a collector holds the lock of the state directory, its pid and
uptime, per source the capture mode, events per second over the last minute,
events and losses since the start and in that minute, the spool backlog (sealed
segments not yet uploaded), and the uplink: connected or not, segments uploaded,
the last upload's age and the last error. --json prints the status file the
collector rewrites every 5 s (its "summary" holds the same figures) with
"running" added, for scripts.

Exit codes: 0 running, 3 not running, 1 error, 2 usage error.`,
		Flags: func(fs *flag.FlagSet) {
			fs.StringVar(&stateDir, "state-dir", "/var/lib/pofr", "the collector's state directory")
			fs.StringVar(&spoolDir, "spool-dir", "", "segment spool (default STATE-DIR/spool)")
			fs.BoolVar(&asJSON, "json", false, "print the status as JSON")
		},
		NoArgs: true,
		Run: func(ctx context.Context, env *cli.Env, args []string) error {
			if spoolDir == "" {
				spoolDir = filepath.Join(stateDir, "spool")
			}
			running := lockHeld(filepath.Join(stateDir, "collector.pid"))
			var st agent.Status
			statusFile := filepath.Join(stateDir, "status.json")
			if b, err := os.ReadFile(statusFile); err == nil {
				// The file is replaced atomically but not fsynced: a
				// crash can leave it empty or cut. What the lock and
				// the spool say is still worth printing.
				if err := json.Unmarshal(b, &st); err != nil {
					st = agent.Status{}
					fmt.Fprintf(env.Stderr, "warning: status file %s is unreadable (%v); a running collector rewrites it every 5 s\n", statusFile, err)
				}
			} else if !errors.Is(err, os.ErrNotExist) {
				return fmt.Errorf("read status: %w", err)
			}
			segs, bytes := agent.Backlog(spoolDir)
			st.Segments, st.Bytes = segs, bytes
			if asJSON {
				out := struct {
					Running bool `json:"running"`
					agent.Status
				}{running, st}
				enc := json.NewEncoder(env.Stdout)
				enc.SetIndent("", "  ")
				if err := enc.Encode(out); err != nil {
					return err
				}
			} else {
				printStatus(env, running, &st, time.Now())
			}
			if !running {
				return cli.Exit(exitNotRunning, nil)
			}
			return nil
		},
	}
}

// printStatus writes the status for people: state and uptime, per source
// the rate over the last minute and the losses, the backlog and the last
// upload, each with its unit and age.
func printStatus(env *cli.Env, running bool, st *agent.Status, now time.Time) {
	w := env.Stdout
	sum := &st.Summary
	switch {
	case running:
		fmt.Fprintf(w, "collector: running, pid %d, up %s (since %s)\n", st.PID, age(now.Sub(st.Started)), clock(st.Started))
	case st.Updated.IsZero():
		fmt.Fprintf(w, "collector: not running (no status file: it never ran with this state directory)\n")
	default:
		fmt.Fprintf(w, "collector: not running (last status %s ago, pid %d)\n", age(now.Sub(st.Updated)), st.PID)
	}
	if running && now.Sub(st.Updated) > 30*time.Second {
		fmt.Fprintf(w, "warning: status file %s old (written every 5 s): the collector may be stuck\n", age(now.Sub(st.Updated)))
	}
	if st.HostID != "" {
		fmt.Fprintf(w, "host: %s, profile: %s", st.HostID, st.Profile)
		if sum.Capture != "" {
			fmt.Fprintf(w, ", process capture: %s", sum.Capture)
		}
		fmt.Fprintln(w)
	}
	if len(sum.Sources) == 0 && len(st.Sources) > 0 {
		fmt.Fprintln(w, "events: the collector that wrote the status file predates the rates (restart it: pofr-collector run --daemon --replace)")
	}
	if len(sum.Sources) > 0 {
		fmt.Fprintf(w, "events, rates over the last %s:\n", age(time.Duration(sum.Window*float64(time.Second))))
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "  SOURCE\tMODE\tEVENTS/S\tEVENTS\tLOST\tLOST (WINDOW)")
		names := make([]string, 0, len(sum.Sources))
		for n := range sum.Sources {
			names = append(names, n)
		}
		sort.Strings(names)
		for _, n := range names {
			src := sum.Sources[n]
			if src.Mode == "" {
				src.Mode = "-"
			}
			fmt.Fprintf(tw, "  %s\t%s\t%.1f\t%d\t%d\t%d\n", n, src.Mode, src.PerSecond, src.Seen, src.Lost, src.LostInWindow)
		}
		tw.Flush()
	}
	fmt.Fprintf(w, "spool: %d segments (%s) waiting for upload", st.Segments, humanBytes(st.Bytes))
	if sum.Spool.Sealed > 0 || sum.Spool.Rows > 0 {
		fmt.Fprintf(w, "; since the start %d rows, %d rows lost, %d segments sealed, %d evicted by the quota",
			sum.Spool.Rows, sum.Spool.Lost, sum.Spool.Sealed, sum.Spool.Evicted)
	}
	fmt.Fprintln(w)
	switch u := sum.Uplink; {
	case u == nil && st.HostID == "":
	case u == nil:
		fmt.Fprintln(w, "uplink: none (standalone: segments stay in the spool)")
	default:
		state := "connected"
		if !u.Connected {
			state = "not connected"
		}
		fmt.Fprintf(w, "uplink: %s, %d segments uploaded (%s), %d failed attempts", state, u.Uploaded, humanBytes(u.Bytes), u.Failures)
		if u.LastUpload != nil {
			fmt.Fprintf(w, ", last upload %s ago (%s)", age(now.Sub(*u.LastUpload)), clock(*u.LastUpload))
		} else {
			fmt.Fprintf(w, ", nothing uploaded yet")
		}
		fmt.Fprintln(w)
		if u.LastError != "" {
			fmt.Fprintf(w, "uplink error: %s\n", u.LastError)
		}
	}
}

// age renders a duration the way people read it: 45s, 12m 5s, 3h 2m, 4d 5h.
func age(d time.Duration) string {
	if d < 0 {
		d = 0
	}
	s := int64(d.Round(time.Second) / time.Second)
	switch {
	case s < 60:
		return fmt.Sprintf("%ds", s)
	case s < 3600:
		return fmt.Sprintf("%dm %ds", s/60, s%60)
	case s < 86400:
		return fmt.Sprintf("%dh %dm", s/3600, s%3600/60)
	}
	return fmt.Sprintf("%dd %dh", s/86400, s%86400/3600)
}

// clock renders a moment in UTC.
func clock(t time.Time) string { return t.UTC().Format("2006-01-02 15:04:05 UTC") }

func humanBytes(n int64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.1f GiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}
