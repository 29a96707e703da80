package main

import (
	"bufio"
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"flag"
	"fmt"
	"io"
	"path/filepath"
	"strconv"
	"text/tabwriter"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"

	"github.com/pofr/pofr/internal/cli"
	"github.com/pofr/pofr/internal/event"
	"github.com/pofr/pofr/spool"
)

// defaultSpoolDir is where 'run' keeps its spool unless told otherwise.
const defaultSpoolDir = "/var/lib/pofr/spool"

// exitVerifyFailed is the exit code of 'spool verify' and 'spool cat' when a
// segment does not verify.
const exitVerifyFailed = 3

func spoolLsCommand() *cli.Command {
	var dir string
	return &cli.Command{
		Name:    "spool ls",
		Summary: "list the sealed segments waiting in the spool",
		Usage:   "[--dir DIR]",
		Help: `Prints one line per sealed segment, oldest first: seq, file name, rows, size,
the time range of its rows (UTC) and whether its prev_digest is the digest of
the segment listed before it (ok, BROKEN, or - when that segment is not in the
spool any more). Only manifests are read and nothing is authenticated: use
'spool verify' for that.

Exit codes: 0 listed, 1 the spool could not be read, 2 usage error.

Example:
  pofr-collector spool ls --dir /var/lib/pofr/spool`,
		Flags:  func(fs *flag.FlagSet) { fs.StringVar(&dir, "dir", defaultSpoolDir, "spool directory") },
		NoArgs: true,
		Run: func(ctx context.Context, env *cli.Env, args []string) error {
			return spoolLs(env.Stdout, dir)
		},
	}
}

func spoolLs(out io.Writer, dir string) error {
	infos, err := spool.List(dir)
	if err != nil {
		return err
	}
	if len(infos) == 0 {
		fmt.Fprintf(out, "no sealed segments in %s\n", dir)
		return nil
	}
	tw := tabwriter.NewWriter(out, 0, 8, 2, ' ', 0)
	fmt.Fprintln(tw, "SEQ\tNAME\tROWS\tBYTES\tFROM\tTO\tCHAIN")
	var prev *spool.Manifest
	var prevDigest string
	var total int64
	for _, in := range infos {
		total += in.Size
		m, digest, err := spool.ReadManifestFile(in.Path)
		if err != nil {
			fmt.Fprintf(tw, "%d\t%s\t-\t%d\t-\t-\tunreadable: %v\n", in.Seq, in.Name, in.Size, err)
			prev = nil
			continue
		}
		chain := "-"
		switch {
		case m.Seq == 1:
			chain = "start"
		case prev != nil && prev.HostID == m.HostID && prev.Seq+1 == m.Seq:
			chain = "ok"
			if prevDigest != m.PrevDigest {
				chain = "BROKEN"
			}
		}
		fmt.Fprintf(tw, "%d\t%s\t%d\t%d\t%s\t%s\t%s\n", m.Seq, in.Name, m.Rows(), in.Size, fmtNS(m.MinTS), fmtNS(m.MaxTS), chain)
		prev, prevDigest = m, digest
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	_, err = fmt.Fprintf(out, "%d segments, %d bytes\n", len(infos), total)
	return err
}

func fmtNS(ns int64) string { return time.Unix(0, ns).UTC().Format("2006-01-02T15:04:05.000Z") }

func spoolVerifyCommand() *cli.Command {
	var dir, pubkey string
	return &cli.Command{
		Name:    "spool verify",
		Summary: "verify segments: container, manifest, signature, digests, Arrow data, chain",
		Usage:   "[--pubkey FILE] [--dir DIR | SEGMENT...]",
		Help: `Verifies the given segment files, or every segment of the spool directory,
and prints one line per segment: "ok" or "FAIL" with the reason. Consecutive
segments of one host are also checked to form a hash chain, and each file's
name must match its content.

--pubkey names the host's signing key: an OpenSSH public key line
("ssh-ed25519 AAAA...") or the private key file itself. Without it signatures
are not checked (everything else is).

Exit codes: 0 every segment verified, 3 at least one did not, 1 the spool
could not be read, 2 usage error.

Example:
  pofr-collector spool verify --pubkey /etc/pofr/signing.key`,
		Flags: func(fs *flag.FlagSet) {
			fs.StringVar(&dir, "dir", defaultSpoolDir, "spool directory, when no segment files are given")
			fs.StringVar(&pubkey, "pubkey", "", "file with the host's Ed25519 signing key (public key line or private key)")
		},
		Run: func(ctx context.Context, env *cli.Env, args []string) error {
			return spoolVerify(ctx, env, dir, pubkey, args)
		},
	}
}

func spoolVerify(ctx context.Context, env *cli.Env, dir, pubkey string, files []string) error {
	pub, err := loadPub(pubkey)
	if err != nil {
		return err
	}
	if pub == nil {
		fmt.Fprintln(env.Stderr, "note: no --pubkey: signatures are not checked")
	}
	if len(files) == 0 {
		infos, err := spool.List(dir)
		if err != nil {
			return err
		}
		for _, in := range infos {
			files = append(files, in.Path)
		}
		if len(files) == 0 {
			fmt.Fprintf(env.Stdout, "no sealed segments in %s\n", dir)
			return nil
		}
	}
	var prev *spool.Segment
	failed := 0
	for _, path := range files {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		opts := spool.VerifyOptions{PublicKey: pub}
		if prev != nil {
			if _, seq, _, ok := spool.ParseName(filepath.Base(path)); ok && seq == prev.Manifest.Seq+1 {
				d := prev.Digest
				opts.PrevDigest = &d
			}
		}
		seg, err := spool.VerifyFile(path, opts)
		if err == nil && seg.Name() != filepath.Base(path) {
			err = fmt.Errorf("file name does not match its content, which names %s", seg.Name())
		}
		if prev != nil {
			prev.Release()
			prev = nil
		}
		if err != nil {
			failed++
			fmt.Fprintf(env.Stdout, "FAIL  %s: %v\n", filepath.Base(path), err)
			if seg != nil {
				seg.Release()
			}
			continue
		}
		sig := "signature ok"
		if !seg.Signed {
			sig = "signature not checked"
		}
		chain := "chain not checked"
		if opts.PrevDigest != nil {
			chain = "chain ok"
		} else if seg.Manifest.Seq == 1 {
			chain = "chain start"
		}
		fmt.Fprintf(env.Stdout, "ok    %s: seq %d, %d rows, %s, %s\n", filepath.Base(path), seg.Manifest.Seq, seg.Manifest.Rows(), sig, chain)
		prev = seg
	}
	if prev != nil {
		prev.Release()
	}
	if failed > 0 {
		return cli.Exit(exitVerifyFailed, fmt.Errorf("%d of %d segments failed verification", failed, len(files)))
	}
	return nil
}

func loadPub(path string) (ed25519.PublicKey, error) {
	if path == "" {
		return nil, nil
	}
	return spool.LoadPublicKey(path)
}

func spoolCatCommand() *cli.Command {
	var table, pubkey string
	return &cli.Command{
		Name:    "spool cat",
		Summary: "print a segment's rows as JSON lines",
		Usage:   "[--table proc|file|sock|gap|acct] [--pubkey FILE] SEGMENT...",
		Help: `Verifies each segment and prints its rows as JSON lines, one object per row:
"table" first, then the columns in schema order. Integers and timestamps (ns
since the epoch, UTC) are numbers; null is null. Byte columns (paths, argv,
names) are printed exactly and safely: as a JSON string when the bytes are
valid UTF-8, with every control character, Unicode format character (bidi
overrides, zero-width characters) and U+2028/U+2029 written as \uXXXX (so
argv reads "ls\u0000-l\u0000"); otherwise as {"b64":"<standard base64>"}.

Exit codes: 0 ok, 3 a segment did not verify (its rows are not printed),
2 usage error.

Example:
  pofr-collector spool cat --table proc /var/lib/pofr/spool/*.pofr | jq .exe`,
		Flags: func(fs *flag.FlagSet) {
			fs.StringVar(&table, "table", "", "print only this table")
			fs.StringVar(&pubkey, "pubkey", "", "check signatures with this key (public key line or private key)")
		},
		Run: func(ctx context.Context, env *cli.Env, args []string) error {
			if len(args) == 0 {
				return cli.Usagef("no segment files given")
			}
			if table != "" && event.SchemaOf(table) == nil {
				return cli.Usagef("--table %q: want one of %v", table, event.Tables)
			}
			return spoolCat(ctx, env, table, pubkey, args)
		},
	}
}

func spoolCat(ctx context.Context, env *cli.Env, table, pubkey string, files []string) error {
	pub, err := loadPub(pubkey)
	if err != nil {
		return err
	}
	out := bufio.NewWriterSize(env.Stdout, 64<<10)
	defer out.Flush()
	failed := 0
	for _, path := range files {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		seg, err := spool.VerifyFile(path, spool.VerifyOptions{PublicKey: pub})
		if err != nil {
			failed++
			fmt.Fprintf(env.Stderr, "%s: %v\n", path, err)
			continue
		}
		for _, t := range event.Tables {
			if table != "" && t != table {
				continue
			}
			rec, err := seg.Record(t)
			if err == nil {
				err = writeRows(out, t, rec)
			}
			if err != nil {
				seg.Release()
				return err
			}
		}
		seg.Release()
	}
	if failed > 0 {
		out.Flush()
		return cli.Exit(exitVerifyFailed, fmt.Errorf("%d of %d segments failed verification", failed, len(files)))
	}
	return nil
}

// writeRows prints rec's rows as JSON lines.
func writeRows(w *bufio.Writer, table string, rec arrow.RecordBatch) error {
	schema := rec.Schema()
	var line []byte
	for i := 0; i < int(rec.NumRows()); i++ {
		line = append(line[:0], `{"table":`...)
		line = strconv.AppendQuote(line, table)
		for j, col := range rec.Columns() {
			line = append(line, ',')
			line = appendJSONString(line, []byte(schema.Field(j).Name))
			line = append(line, ':')
			var err error
			if line, err = appendValue(line, col, i); err != nil {
				return fmt.Errorf("%s column %s: %w", table, schema.Field(j).Name, err)
			}
		}
		line = append(line, "}\n"...)
		if _, err := w.Write(line); err != nil {
			return err
		}
	}
	return nil
}

// appendValue appends row i of col as JSON.
func appendValue(b []byte, col arrow.Array, i int) ([]byte, error) {
	if col.IsNull(i) {
		return append(b, "null"...), nil
	}
	switch a := col.(type) {
	case *array.Timestamp:
		return strconv.AppendInt(b, int64(a.Value(i)), 10), nil
	case *array.Int32:
		return strconv.AppendInt(b, int64(a.Value(i)), 10), nil
	case *array.Int64:
		return strconv.AppendInt(b, a.Value(i), 10), nil
	case *array.Uint8:
		return strconv.AppendUint(b, uint64(a.Value(i)), 10), nil
	case *array.Uint16:
		return strconv.AppendUint(b, uint64(a.Value(i)), 10), nil
	case *array.Uint32:
		return strconv.AppendUint(b, uint64(a.Value(i)), 10), nil
	case *array.Uint64:
		return strconv.AppendUint(b, a.Value(i), 10), nil
	case *array.Binary:
		return appendBytes(b, a.Value(i)), nil
	case *array.String:
		return appendBytes(b, []byte(a.Value(i))), nil
	case *array.Dictionary:
		return appendValue(b, a.Dictionary(), a.GetValueIndex(i))
	}
	return nil, fmt.Errorf("no JSON form for %s", col.DataType())
}

// appendBytes appends exact bytes as JSON: a string when they are valid
// UTF-8 (with control and format characters escaped, so the output is safe on
// a terminal and parses back to the same bytes), else {"b64": …}.
func appendBytes(b, v []byte) []byte {
	if !utf8.Valid(v) {
		b = append(b, `{"b64":"`...)
		b = base64.StdEncoding.AppendEncode(b, v)
		return append(b, `"}`...)
	}
	return appendJSONString(b, v)
}

// appendJSONString appends valid UTF-8 v as a JSON string.
func appendJSONString(b, v []byte) []byte {
	const hexDigits = "0123456789abcdef"
	u := func(b []byte, r rune) []byte {
		return append(b, '\\', 'u', hexDigits[r>>12&15], hexDigits[r>>8&15], hexDigits[r>>4&15], hexDigits[r&15])
	}
	b = append(b, '"')
	for len(v) > 0 {
		r, n := utf8.DecodeRune(v)
		switch {
		case r == '"' || r == '\\':
			b = append(b, '\\', byte(r))
		case r == '\n':
			b = append(b, '\\', 'n')
		case r == '\t':
			b = append(b, '\\', 't')
		case r < 0x20 || r == 0x7f || (r >= 0x80 && r <= 0x9f) || r == 0x2028 || r == 0x2029 || unicode.Is(unicode.Cf, r):
			if r > 0xffff { // a format character beyond the BMP: a surrogate pair
				r -= 0x10000
				b = u(b, 0xd800+(r>>10))
				b = u(b, 0xdc00+(r&0x3ff))
			} else {
				b = u(b, r)
			}
		default:
			b = append(b, v[:n]...)
		}
		v = v[n:]
	}
	return append(b, '"')
}
