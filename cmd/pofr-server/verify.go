package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"

	"github.com/pofr/pofr/custody"
	"github.com/pofr/pofr/internal/cli"
	"github.com/pofr/pofr/internal/registry"
	"github.com/pofr/pofr/internal/statedir"
	"github.com/pofr/pofr/loader"
)

// verifyCommand is "pofr-server verify".
func verifyCommand() *cli.Command {
	var dsnFile, host string
	var stateDir statedir.Dir
	var fset *flag.FlagSet
	var archive, rows, asJSON, noSettle bool
	return &cli.Command{
		Name:    "verify",
		Summary: "audit the chain of custody: ledger holes, hash chain, archived evidence",
		Usage:   "--dsn-file F [--host H] [--state-dir D] [--archive] [--rows] [--json] [--no-settle]",
		Help: `Audits the custody ledger (the segments table) of every host, or of --host,
walking it in sequence order, and reports:

  hole            sequence numbers never loaded that nothing explains (the
                  detail names those quarantined, and why)       PROBLEM
  evicted         sequence numbers the host itself declared evicted by its
                  spool quota (a gap row of source spool)
  pending         sequence numbers whose files wait in the inbox
  chain_break     prev_digest is not the digest of the loaded seq-1  PROBLEM
  chain_mismatch  the ledger's chain_ok disagrees with its own digests (the
                  ledger was edited)                             PROBLEM
  fork            another signed segment claimed this loaded seq with
                  another digest; load quarantined it (class fork) PROBLEM
  settled         chain_ok was NULL and seq-1 is now loaded: the audit
                  writes the verdict (not with --no-settle)
  unverifiable    chain_ok NULL: seq-1 is not in the ledger

With --archive it also re-verifies every archived segment file in
state-dir/archive/HOST/ against the host's signing key in the registry
(signature, member digests, host) and against the ledger's digest:

  archive_bad      the file fails verification                   PROBLEM
  archive_digest   the file is valid but not the segment the ledger
                   recorded                                      PROBLEM
  archive_missing  the file is gone and retention did not remove it
                   (segments.archive_removed_at is NULL)         PROBLEM
  archive_extra    a file in the archive without a ledger row    PROBLEM
  unarchived       loaded, but still in the inbox (the next load pass
                   archives it)
  no_key           the host has no usable signing key            PROBLEM

With --rows (implies --archive) it also compares, for every archived file
that verified, the rows the database holds for that segment with the rows of
the file: every column of every row, and the host, boot and UTC offset of the
segment, in each table:

  rows_differ      rows changed, deleted, or added under the segment
                   (the detail counts each per table and names the first
                   row_no)                                       PROBLEM
  rows_expired     rows older than the oldest day partition are gone:
                   retention dropped their partition (or they were
                   deleted, which this cannot tell apart)

What --rows proves: every row the database holds for a segment whose
archived file is intact is the row the host signed, no row of it is missing
(but those of dropped partitions), and none was added. It cannot check
segments whose archived file retention removed.

Files removed by 'retention --archive-keep' are counted as expired, not
missing. The output is a summary line per host and a line per finding, or
with --json one JSON document (hosts, their counts and findings). Settling
needs UPDATE on segments (the loader's DSN has it); with a read-only DSN use
--no-settle. --archive reads every archived file: it takes as long as reading
the archive from disk; --rows also reads every row back from the database.

Exit codes: 0 no problem found; 1 error; 2 usage; 3 problems found.

Example (weekly, from cron):
  pofr-server verify --archive`,
		Flags: func(fs *flag.FlagSet) {
			fset = fs
			dsnFileFlag(fs, &dsnFile, "loader", "`file` holding a DSN (the loader's, or a reader's with --no-settle)")
			stateDirFlag(fs, &stateDir, "server state `dir`ectory (registry, inbox, archive)")
			fs.StringVar(&host, "host", "", "audit only this `host` id")
			fs.BoolVar(&archive, "archive", false, "re-verify every archived segment file (signature, digests, ledger digest)")
			fs.BoolVar(&rows, "rows", false, "also compare the database's rows of every archived segment with its file (implies --archive)")
			fs.BoolVar(&asJSON, "json", false, "write the report as JSON")
			fs.BoolVar(&noSettle, "no-settle", false, "report chain_ok values that can be settled, without writing them")
		},
		NoArgs: true,
		Run: func(ctx context.Context, env *cli.Env, args []string) error {
			db, err := openDSNFile(dsnFile)
			if err != nil {
				return err
			}
			defer db.Close()
			opt := custody.AuditOptions{Host: host, StateDir: stateDir, Archive: archive || rows, NoSettle: noSettle, Log: env.Log}
			if rows {
				opt.Rows = loader.CheckRows
			}
			var rep *custody.AuditReport
			err = registryOf(ctx, fset, stateDir, func(reg registry.Store) error {
				opt.Registry = reg
				rep, err = custody.Audit(ctx, db, opt)
				return err
			})
			if err != nil {
				return err
			}
			if asJSON {
				enc := json.NewEncoder(env.Stdout)
				enc.SetIndent("", "  ")
				if err := enc.Encode(rep); err != nil {
					return fmt.Errorf("write report: %w", err)
				}
			} else if err := writeAudit(env.Stdout, rep, archive || rows, rows); err != nil {
				return fmt.Errorf("write report: %w", err)
			}
			if n := rep.Problems(); n > 0 {
				return cli.Exit(3, nil)
			}
			return nil
		},
	}
}

// writeAudit writes the report as two tables: hosts, then findings.
func writeAudit(w io.Writer, rep *custody.AuditReport, archive, rows bool) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	head := "HOST\tSEGMENTS\tSEQ\tHOLES\tEVICTED\tPENDING\tCHAIN_BREAKS\tSETTLED\tUNVERIFIABLE"
	if archive {
		head += "\tARCHIVE_OK\tEXPIRED\tARCHIVE_BAD"
	}
	if rows {
		head += "\tROWS_OK\tROWS_BAD"
	}
	fmt.Fprintln(tw, head+"\tPROBLEMS")
	for _, h := range rep.Hosts {
		seq := "-"
		if h.Segments > 0 {
			seq = fmt.Sprintf("%d-%d", h.FirstSeq, h.LastSeq)
		}
		line := fmt.Sprintf("%s\t%d\t%s\t%d\t%d\t%d\t%d\t%d\t%d", h.Host, h.Segments, seq, h.Holes, h.Evicted, h.Pending, h.ChainBreaks, h.Settled, h.Unverified)
		if archive && h.Archive != nil {
			line += fmt.Sprintf("\t%d\t%d\t%d", h.Archive.OK, h.Archive.Expired, h.Archive.Bad)
		}
		if rows && h.Archive != nil {
			line += fmt.Sprintf("\t%d\t%d", h.Archive.RowsOK, h.Archive.RowsBad)
		}
		fmt.Fprintf(tw, "%s\t%d\n", line, h.Problems())
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	var n int
	for _, h := range rep.Hosts {
		n += len(h.Findings)
	}
	if n == 0 {
		_, err := fmt.Fprintf(w, "\n%d hosts audited: no findings\n", len(rep.Hosts))
		return err
	}
	fmt.Fprintln(w)
	tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "HOST\tKIND\tSEQ\tPROBLEM\tFILE\tDETAIL")
	for _, h := range rep.Hosts {
		for _, f := range h.Findings {
			seq := fmt.Sprint(f.FromSeq)
			if f.ToSeq != f.FromSeq {
				seq += fmt.Sprintf("-%d", f.ToSeq)
			}
			p := ""
			if f.Problem {
				p = "yes"
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", f.Host, f.Kind, seq, p, orDash(f.File), strings.ReplaceAll(f.Detail, "\n", " "))
		}
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	_, err := fmt.Fprintf(w, "\n%d hosts audited: %d problems\n", len(rep.Hosts), rep.Problems())
	return err
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
