package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/pofr/pofr/collector/agent"
	"github.com/pofr/pofr/internal/cli"
)

// exitNotRunning is status's exit code when no collector runs.
const exitNotRunning = 3

func init() {
	var stateDir, spoolDir string
	var asJSON bool
	cli.Register(prog, &cli.Command{
		Name:    "status",
		Summary: "is the collector running, since when, its counters and the spool backlog",
		Usage:   "[flags]",
		Help: `Prints whether a collector holds the lock of the state directory, its pid and start
time, per-source counters (events seen, lost), the uplink state and the spool backlog
(sealed segments not yet uploaded).

Exit codes: 0 running, 3 not running, 1 error.`,
		Flags: func(fs *flag.FlagSet) {
			fs.StringVar(&stateDir, "state-dir", "/var/lib/pofr", "the collector's state directory")
			fs.StringVar(&spoolDir, "spool-dir", "", "segment spool (default STATE-DIR/spool)")
			fs.BoolVar(&asJSON, "json", false, "print the status as JSON")
		},
		Run: func(ctx context.Context, env *cli.Env, args []string) error {
			if spoolDir == "" {
				spoolDir = filepath.Join(stateDir, "spool")
			}
			running := lockHeld(filepath.Join(stateDir, "collector.pid"))
			var st agent.Status
			if b, err := os.ReadFile(filepath.Join(stateDir, "status.json")); err == nil {
				if err := json.Unmarshal(b, &st); err != nil {
					return fmt.Errorf("read status: %w", err)
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
				printStatus(env, running, &st)
			}
			if !running {
				return cli.Exit(exitNotRunning, nil)
			}
			return nil
		},
	})
}

func printStatus(env *cli.Env, running bool, st *agent.Status) {
	w := env.Stdout
	if running {
		fmt.Fprintf(w, "collector: running, pid %d, since %s (%s)\n", st.PID, st.Started.UTC().Format(time.RFC3339),
			time.Since(st.Started).Round(time.Second))
	} else {
		fmt.Fprintf(w, "collector: not running\n")
		if !st.Updated.IsZero() {
			fmt.Fprintf(w, "last status: %s\n", st.Updated.UTC().Format(time.RFC3339))
		}
	}
	if st.HostID != "" {
		fmt.Fprintf(w, "host id: %s, profile: %s\n", st.HostID, st.Profile)
	}
	names := make([]string, 0, len(st.Sources))
	for n := range st.Sources {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintf(w, "%-8s %s\n", n+":", compact(st.Sources[n]))
	}
	if len(st.Uplink) > 0 {
		fmt.Fprintf(w, "uplink:  %s\n", compact(st.Uplink))
	}
	fmt.Fprintf(w, "spool backlog: %d segments, %s\n", st.Segments, humanBytes(st.Bytes))
}

// compact renders a counters object as "Key=value …", leaving out zeros.
func compact(raw json.RawMessage) string {
	var m map[string]any
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	if err := dec.Decode(&m); err != nil {
		return string(raw)
	}
	keys := make([]string, 0, len(m))
	for k, v := range m {
		if v == nil || v == false || v == "" || v == json.Number("0") {
			continue
		}
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	for i, k := range keys {
		if i > 0 {
			b.WriteByte(' ')
		}
		fmt.Fprintf(&b, "%s=%v", k, m[k])
	}
	return b.String()
}

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
