package custody

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/pofr/pofr/internal/durable"
	"github.com/pofr/pofr/internal/statedir"
	"github.com/pofr/pofr/schema"
	"github.com/pofr/pofr/spool"
)

// PruneOptions configure [PruneFiles].
type PruneOptions struct {
	// StateDir is the server's state directory.
	StateDir statedir.Dir
	// Before: files whose age (see PruneFiles) is before it are removed.
	Before time.Time
	// DryRun reports what would be removed and removes nothing.
	DryRun bool
	// Log gets one Info line per host and directory with what was removed,
	// and a Debug line per file; nil discards.
	Log *slog.Logger
}

// PruneSummary says what PruneFiles removed (or would remove).
type PruneSummary struct {
	ArchiveFiles    int   // archived segment files
	ArchiveBytes    int64 //
	QuarantineFiles int   // quarantined files (each with its .reason)
	QuarantineBytes int64 //
}

// PruneFiles is the file side of retention: it deletes archived segment
// files and quarantined files older than opt.Before.
//
// An archived segment's age is the ledger's ts_to, the time of its newest
// event (sealed_at, then loaded_at, if the manifest had no rows), so that
// the evidence goes when the partitions holding its rows go (with the same
// period) and not when a copy or restore of the archive touched its mtime.
// Before deleting the file it sets segments.archive_removed_at, so that
// pofr-server verify --archive knows the file was retired, not lost; the
// ledger row itself stays. An archived file without a ledger row is aged by
// its modification time.
//
// A quarantined file is aged by the modification time of its .reason file
// (when it was quarantined), or its own if there is none; the file and its
// .reason go together. The quarantine table's rows stay.
//
// Needs UPDATE on segments.
func PruneFiles(ctx context.Context, db *sql.DB, opt PruneOptions) (PruneSummary, error) {
	var sum PruneSummary
	if opt.StateDir == "" {
		return sum, errors.New("prune files: no state directory")
	}
	log := opt.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	verb := "removed"
	if opt.DryRun {
		verb = "would remove"
	}
	before := opt.Before.UTC()
	err := pruneHosts(opt.StateDir.Archives(), &sum.ArchiveFiles, &sum.ArchiveBytes, func(h string) (int, int64, error) {
		n, b, err := pruneArchive(ctx, db, opt, h, log)
		if n > 0 {
			log.Info("archive retention: "+verb+" segment files", "host", h, "files", n, "bytes", b, "before", before)
		}
		return n, b, err
	})
	if err != nil {
		return sum, err
	}
	err = pruneHosts(opt.StateDir.Quarantines(), &sum.QuarantineFiles, &sum.QuarantineBytes, func(h string) (int, int64, error) {
		n, b, err := pruneQuarantine(opt, h, log)
		if n > 0 {
			log.Info("quarantine retention: "+verb+" files", "host", h, "files", n, "bytes", b, "before", before)
		}
		return n, b, err
	})
	return sum, err
}

// pruneHosts runs prune on each host directory under dir and adds up the
// files and bytes it removed, also those of a host that then failed.
func pruneHosts(dir string, files *int, bytes *int64, prune func(host string) (int, int64, error)) error {
	hosts, err := subdirs(dir)
	if err != nil {
		return err
	}
	for _, h := range hosts {
		n, b, err := prune(h)
		*files += n
		*bytes += b
		if err != nil {
			return err
		}
	}
	return nil
}

// visibleFiles keeps the regular files of ents whose names do not start
// with a dot.
func visibleFiles(ents []os.DirEntry) []os.DirEntry {
	return slices.DeleteFunc(ents, func(e os.DirEntry) bool {
		return strings.HasPrefix(e.Name(), ".") || !e.Type().IsRegular()
	})
}

// subdirs lists the host directories under dir.
func subdirs(dir string) ([]string, error) {
	ents, err := statedir.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("prune files: %w", err)
	}
	var out []string
	for _, e := range ents {
		if e.IsDir() && spool.ValidHostID(e.Name()) {
			out = append(out, e.Name())
		}
	}
	return out, nil
}

// pruneArchive removes host's archived files older than opt.Before.
func pruneArchive(ctx context.Context, db *sql.DB, opt PruneOptions, host string, log *slog.Logger) (int, int64, error) {
	dir := opt.StateDir.Host(host).Archive
	ents, err := os.ReadDir(dir)
	if err != nil {
		return 0, 0, fmt.Errorf("prune archive of %s: %w", host, err)
	}
	// The ledger's age of every segment of the host that has one.
	type led struct {
		id      uint64
		old     bool
		removed bool
	}
	ledger := map[string]led{}
	rows, err := db.QueryContext(ctx, `SELECT segment_id, file_name, COALESCE(ts_to, sealed_at, loaded_at) < ?, archive_removed_at IS NOT NULL
		FROM segments WHERE host_id = ?`, opt.Before.UTC(), host)
	if err != nil {
		return 0, 0, fmt.Errorf("prune archive of %s: read ledger: %w", host, err)
	}
	for rows.Next() {
		var name string
		var l led
		if err := rows.Scan(&l.id, &name, &l.old, &l.removed); err != nil {
			rows.Close()
			return 0, 0, fmt.Errorf("prune archive of %s: read ledger: %w", host, err)
		}
		ledger[name] = l
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return 0, 0, fmt.Errorf("prune archive of %s: read ledger: %w", host, err)
	}
	var n int
	var bytes int64
	for _, e := range visibleFiles(ents) {
		name := e.Name()
		fi, err := e.Info()
		if err != nil {
			continue // gone meanwhile
		}
		l, inLedger := ledger[name]
		if inLedger && !l.old || !inLedger && !fi.ModTime().Before(opt.Before) {
			continue
		}
		if opt.DryRun {
			log.Debug("archive retention: would remove", "host", host, "file", name)
			n, bytes = n+1, bytes+fi.Size()
			continue
		}
		if inLedger && !l.removed {
			if _, err := db.ExecContext(ctx, "UPDATE segments SET archive_removed_at = UTC_TIMESTAMP(6) WHERE segment_id = ?", l.id); err != nil {
				return n, bytes, fmt.Errorf("prune archive of %s: mark %s removed in the ledger: %w", host, name, err)
			}
		}
		if err := os.Remove(filepath.Join(dir, name)); err != nil && !errors.Is(err, os.ErrNotExist) {
			return n, bytes, fmt.Errorf("prune archive of %s: %w", host, err)
		}
		log.Debug("archive retention: removed", "host", host, "file", name, "in_ledger", inLedger)
		n, bytes = n+1, bytes+fi.Size()
	}
	if n > 0 && !opt.DryRun {
		if err := durable.SyncDir(dir); err != nil {
			return n, bytes, err
		}
	}
	return n, bytes, nil
}

// pruneQuarantine removes host's quarantined files (and their .reason)
// quarantined before opt.Before.
func pruneQuarantine(opt PruneOptions, host string, log *slog.Logger) (int, int64, error) {
	dir := opt.StateDir.Host(host).Quarantine
	ents, err := os.ReadDir(dir)
	if err != nil {
		return 0, 0, fmt.Errorf("prune quarantine of %s: %w", host, err)
	}
	const reasonExt = ".reason"
	var n int
	var bytes int64
	for _, e := range visibleFiles(ents) {
		name := e.Name()
		path := filepath.Join(dir, name)
		reason := path + reasonExt
		if strings.HasSuffix(name, reasonExt) {
			// A .reason whose file is gone is aged on its own; one
			// with its file goes with it below.
			if _, err := os.Stat(strings.TrimSuffix(path, reasonExt)); err == nil {
				continue
			}
			reason = ""
		}
		fi, err := e.Info()
		if err != nil {
			continue
		}
		age := fi.ModTime()
		if reason != "" {
			if ri, err := os.Stat(reason); err == nil {
				age = ri.ModTime()
			} else {
				reason = ""
			}
		}
		if !age.Before(opt.Before) {
			continue
		}
		n, bytes = n+1, bytes+fi.Size()
		if opt.DryRun {
			log.Debug("quarantine retention: would remove", "host", host, "file", name)
			continue
		}
		for _, p := range []string{path, reason} {
			if p == "" {
				continue
			}
			if err := os.Remove(p); err != nil && !errors.Is(err, os.ErrNotExist) {
				return n, bytes, fmt.Errorf("prune quarantine of %s: %w", host, err)
			}
		}
		log.Debug("quarantine retention: removed", "host", host, "file", name)
	}
	if n > 0 && !opt.DryRun {
		if err := durable.SyncDir(dir); err != nil {
			return n, bytes, err
		}
	}
	return n, bytes, nil
}

// ParseArchiveKeep parses --archive-keep: "" means the same period as keep,
// "0" keeps files forever (returns 0), anything else is a [ParseKeep] period.
func ParseArchiveKeep(s string, keep time.Duration) (time.Duration, error) {
	switch s {
	case "":
		return keep, nil
	case "0", "0d", "forever":
		return 0, nil
	}
	return schema.ParseKeep(s)
}
