package loader

import (
	"context"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/go-sql-driver/mysql"

	"github.com/pofr/pofr/internal/durable"
	"github.com/pofr/pofr/internal/event"
	"github.com/pofr/pofr/spool"
)

// Class names why a segment was quarantined: the class column of the
// quarantine table and the first line of its .reason file.
type Class string

// The quarantine classes.
const (
	ClassBadSignature       Class = "bad_signature"       // the signature does not verify with the registered key
	ClassWrongHost          Class = "wrong_host"          // the manifest names another host than the inbox
	ClassTooLarge           Class = "too_large"           // the file is over the size limit
	ClassTooLong            Class = "too_long"            // a value is longer than its column allows
	ClassUnsupportedVersion Class = "unsupported_version" // a segment format this server does not read
	ClassCorrupt            Class = "corrupt"             // the container, manifest or a member is malformed
	ClassDecode             Class = "decode"              // the rows do not decode to the table's schema
	ClassLoad               Class = "load"                // MariaDB warned about or dropped rows (ErrRejected)
	ClassName               Class = "name"                // the file name does not match the manifest (ErrName)
	ClassReplay             Class = "replay"              // the digest is in the ledger under another (host, seq) (ErrReplay)
	ClassFork               Class = "fork"                // another digest holds this (host, seq) (ErrFork)
	ClassTimeRange          Class = "time_range"          // a timestamp outside 1970–2200 (ErrTimeRange)
	ClassUnknownHost        Class = "unknown_host"        // the inbox's host is not registered or has no key (ErrUnknownHost)
	ClassRevokedHost        Class = "revoked_host"        // the host was deregistered (ErrRevoked)
	ClassDatabase           Class = "database"            // MariaDB refused the segment's data (ErrRefused)
)

// classes maps the sentinel errors to their quarantine class; the first
// that an error wraps names its class.
var classes = []struct {
	err   error
	class Class
}{
	{spool.ErrBadSignature, ClassBadSignature},
	{spool.ErrWrongHost, ClassWrongHost},
	{spool.ErrTooLarge, ClassTooLarge},
	{spool.ErrTooLong, ClassTooLong},
	{spool.ErrUnsupportedVersion, ClassUnsupportedVersion},
	{spool.ErrCorrupt, ClassCorrupt},
	{ErrDecode, ClassDecode},
	{event.ErrSchema, ClassDecode},
	{ErrRejected, ClassLoad},
	{ErrName, ClassName},
	{ErrReplay, ClassReplay},
	{ErrFork, ClassFork},
	{ErrTimeRange, ClassTimeRange},
	{ErrUnknownHost, ClassUnknownHost},
	{ErrRevoked, ClassRevokedHost},
	{ErrRefused, ClassDatabase},
}

// classify names the quarantine class of an error, or "" if the error is
// not the segment's fault.
func classify(err error) Class {
	for _, c := range classes {
		if errors.Is(err, c.err) {
			return c.class
		}
	}
	if refusedData(err) {
		return ClassDatabase
	}
	return ""
}

// refusedData reports a MariaDB error about the data of the statement
// rather than about the server, the connection or the account: SQLSTATE
// classes 22 (data exception) and 23 (integrity constraint), and the data
// errors MariaDB reports as HY000. Such an error is the segment's fault.
func refusedData(err error) bool {
	var me *mysql.MySQLError
	if !errors.As(err, &me) {
		return false
	}
	state := string(me.SQLState[:])
	switch {
	case strings.HasPrefix(state, "22"), strings.HasPrefix(state, "23"):
		return true
	}
	switch me.Number {
	case 1265, // data truncated
		1292, // truncated incorrect value
		1300, // invalid character string
		1366, // incorrect string value
		1367, // illegal value found during parsing
		1411, // incorrect value for function
		1526, // table has no partition for value
		1690, // value out of range
		4025: // CHECK constraint failed
		return true
	}
	return false
}

func nsTime(ns int64) time.Time { return time.Unix(0, ns).UTC() }

func truncate(s string, n int) string {
	s = strings.ToValidUTF8(s, "?")
	if len(s) > n {
		s = s[:n]
	}
	return strings.ToValidUTF8(s, "")
}

// moveFile renames path into dir under name and makes the rename durable.
// Across file systems (an inbox linked to an OpenSSH chroot elsewhere) it
// copies to a temporary file in dir, syncs it, renames it to name, syncs dir
// and only then removes path: a crash in between leaves the file in both
// places, and the ledger makes the next run skip the inbox copy.
func moveFile(path, dir, name string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	dst := filepath.Join(dir, name)
	err := os.Rename(path, dst)
	if errors.Is(err, syscall.EXDEV) {
		err = copyAcross(path, dst)
	}
	if err != nil {
		return err
	}
	for _, d := range []string{dir, filepath.Dir(path)} {
		if err := durable.SyncDir(d); err != nil {
			return err
		}
	}
	return nil
}

// copyAcross moves path to dst on another file system; see moveFile.
func copyAcross(path, dst string) error {
	if err := durable.CopyFile(dst, path, 0o600); err != nil {
		return fmt.Errorf("copy %s to %s: %w", path, dst, err)
	}
	return os.Remove(path)
}

// quarantine moves j's file to the host's quarantine directory with a
// .reason file and records it in the quarantine table.
func (l *Loader) quarantine(ctx context.Context, j job, size int64, class Class, cause error, m *spool.Manifest, digest string) error {
	dir := l.opt.StateDir.Host(j.host).Quarantine
	name := j.name
	if _, err := os.Stat(filepath.Join(dir, name)); err == nil {
		name = fmt.Sprintf("%s.%d", j.name, time.Now().UnixNano()) // keep the earlier one too
	}
	reason := fmt.Sprintf("class: %s\nfile: %s\nat: %s\nerror: %v\n", class, j.name, time.Now().UTC().Format(time.RFC3339Nano), cause)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("quarantine %s: %w", j.name, err)
	}
	if err := durable.WriteFile(filepath.Join(dir, name+".reason"), []byte(reason), 0o600); err != nil {
		return fmt.Errorf("quarantine %s: %w", j.name, err)
	}
	if err := moveFile(j.path, dir, name); err != nil {
		return fmt.Errorf("quarantine %s: %w", j.name, err)
	}
	var seq sql.NullInt64
	var dg []byte
	if m != nil {
		seq = sql.NullInt64{Int64: int64(m.Seq), Valid: true}
	}
	if d, err := hex.DecodeString(digest); err == nil && len(d) == 32 {
		dg = d
	}
	var dgArg any
	if dg != nil {
		dgArg = dg
	}
	if _, err := l.db().ExecContext(ctx, "INSERT INTO quarantine (host_id, file, class, reason, seq, digest, file_bytes) VALUES (?, ?, ?, ?, ?, ?, ?)",
		j.host, name, string(class), truncate(fmt.Sprint(cause), 60000), seq, dgArg, size); err != nil {
		// The file and its .reason are in place: that is the record that
		// matters; the row is a convenience.
		l.log.Error("record quarantine row", "segment", j.name, "err", err)
	}
	return nil
}
