package loader

import (
	"bytes"
	"context"
	"database/sql"
	"testing"
	"time"

	"github.com/pofr/pofr/internal/event"
)

// The readers below turn SQL rows back into event records so that a test
// can compare, with cmp.Diff, everything a segment held with everything
// MariaDB returns: exact bytes, NULL versus empty, every number, every
// timestamp to the nanosecond (ts + ts_ns; other timestamps to the µs).

func nsOf(t time.Time, ns int64) int64 { return t.UnixNano() + ns }

func optOf[T any](n sql.Null[T]) event.Opt[T] {
	if !n.Valid {
		return event.Opt[T]{}
	}
	return event.Some(n.V)
}

func idOf(n sql.Null[uint32]) uint32 {
	if !n.Valid {
		return event.NoID
	}
	return n.V
}

func strOf(n sql.NullString) string { return n.String }

// binOf keeps NULL (nil) apart from empty (non-nil, zero length).
func binOf(b []byte) []byte {
	if b == nil {
		return nil
	}
	return bytes.Clone(b)
}

func usTrunc(ns int64) int64 { return ns - floorMod(ns, 1000) }

// readRows runs the SELECT sel, filtered by where and args, in the order
// the rows were loaded, and returns what scan makes of each row.
func readRows[R any](t testing.TB, db *sql.DB, sel, where string, args []any, scan func(rows *sql.Rows) (R, error)) []R {
	t.Helper()
	rows, err := db.QueryContext(context.Background(), sel+" "+where+" ORDER BY segment_id, row_no", args...)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []R
	for rows.Next() {
		r, err := scan(rows)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

func readProcs(t testing.TB, db *sql.DB, where string, args ...any) []event.Proc {
	t.Helper()
	return readRows(t, db, `SELECT ts, ts_ns, event, pid, tid, ppid, proc_start, parent_start, uid, euid, gid, egid, auid, session_id,
		tty, comm, exe, argv, cwd, exit_code, exit_signal, tracer_pid, cgroup, container_id, ns_pid, ns_mnt, ns_net, ns_user, ns_uts, ns_ipc, ns_cgroup, flags
		FROM proc_events`, where, args, func(rows *sql.Rows) (event.Proc, error) {
		var p event.Proc
		var ts time.Time
		var tsNS int64
		var ev sql.NullString
		var parent sql.Null[int64]
		var uid, euid, gid, egid, auid, sid sql.Null[uint32]
		var code, sig, tracer sql.Null[int32]
		var nsPid, nsMnt, nsNet, nsUser, nsUts, nsIpc, nsCg sql.Null[uint32]
		if err := rows.Scan(&ts, &tsNS, &ev, &p.PID, &p.TID, &p.PPID, &p.ProcStart, &parent, &uid, &euid, &gid, &egid, &auid, &sid,
			&p.TTY, &p.Comm, &p.Exe, &p.Argv, &p.Cwd, &code, &sig, &tracer, &p.Cgroup, &p.ContainerID,
			&nsPid, &nsMnt, &nsNet, &nsUser, &nsUts, &nsIpc, &nsCg, &p.Flags); err != nil {
			return p, err
		}
		p.TS, p.Event, p.ParentStart = nsOf(ts, tsNS), strOf(ev), optOf(parent)
		p.UID, p.EUID, p.GID, p.EGID, p.AUID, p.SessionID = idOf(uid), idOf(euid), idOf(gid), idOf(egid), idOf(auid), idOf(sid)
		p.TTY, p.Comm, p.Exe, p.Argv, p.Cwd, p.Cgroup, p.ContainerID = binOf(p.TTY), binOf(p.Comm), binOf(p.Exe), binOf(p.Argv), binOf(p.Cwd), binOf(p.Cgroup), binOf(p.ContainerID)
		p.ExitCode, p.ExitSignal, p.TracerPID = optOf(code), optOf(sig), optOf(tracer)
		p.NSPid, p.NSMnt, p.NSNet, p.NSUser, p.NSUts, p.NSIpc, p.NSCgroup = optOf(nsPid), optOf(nsMnt), optOf(nsNet), optOf(nsUser), optOf(nsUts), optOf(nsIpc), optOf(nsCg)
		return p, nil
	})
}

func readFiles(t testing.TB, db *sql.DB, where string, args ...any) []event.File {
	t.Helper()
	return readRows(t, db, `SELECT ts, ts_ns, last_ts, count, pid, proc_start, uid, op, path, new_path, inode, dev, flags
		FROM file_events`, where, args, func(rows *sql.Rows) (event.File, error) {
		var f event.File
		var ts, last time.Time
		var tsNS int64
		var ps sql.Null[int64]
		var uid sql.Null[uint32]
		var op sql.NullString
		var ino, dev sql.Null[uint64]
		if err := rows.Scan(&ts, &tsNS, &last, &f.Count, &f.PID, &ps, &uid, &op, &f.Path, &f.NewPath, &ino, &dev, &f.Flags); err != nil {
			return f, err
		}
		f.TS, f.LastTS, f.ProcStart, f.UID, f.Op = nsOf(ts, tsNS), last.UnixNano(), optOf(ps), idOf(uid), strOf(op)
		f.Path, f.NewPath, f.Inode, f.Dev = binOf(f.Path), binOf(f.NewPath), optOf(ino), optOf(dev)
		return f, nil
	})
}

func readSocks(t testing.TB, db *sql.DB, where string, args ...any) []event.Sock {
	t.Helper()
	return readRows(t, db, `SELECT ts, ts_ns, event, proto, family, state, direction, local_addr, local_port, remote_addr, remote_port,
		inode, cookie, uid, pid, proc_start, netns, bytes_sent, bytes_recv, first_ts, flags
		FROM sock_events`, where, args, func(rows *sql.Rows) (event.Sock, error) {
		var s event.Sock
		var ts time.Time
		var tsNS int64
		var ev, proto, state, dir sql.NullString
		var ino, netns, sent, recv sql.Null[uint64]
		var uid sql.Null[uint32]
		var pid sql.Null[int32]
		var ps sql.Null[int64]
		var first sql.NullTime
		if err := rows.Scan(&ts, &tsNS, &ev, &proto, &s.Family, &state, &dir, &s.LocalAddr, &s.LocalPort, &s.RemoteAddr, &s.RemotePort,
			&ino, &s.Cookie, &uid, &pid, &ps, &netns, &sent, &recv, &first, &s.Flags); err != nil {
			return s, err
		}
		s.TS, s.Event, s.Proto, s.State, s.Direction = nsOf(ts, tsNS), strOf(ev), strOf(proto), strOf(state), strOf(dir)
		s.LocalAddr, s.RemoteAddr = binOf(s.LocalAddr), binOf(s.RemoteAddr)
		s.Inode, s.UID, s.PID, s.ProcStart, s.Netns, s.BytesSent, s.BytesRecv = optOf(ino), idOf(uid), optOf(pid), optOf(ps), optOf(netns), optOf(sent), optOf(recv)
		if first.Valid {
			s.FirstTS = event.Some(first.Time.UnixNano())
		}
		return s, nil
	})
}

func readGaps(t testing.TB, db *sql.DB, where string, args ...any) []event.Gap {
	t.Helper()
	return readRows(t, db, `SELECT from_ts, to_ts, source, lost, reason FROM gaps`, where, args, func(rows *sql.Rows) (event.Gap, error) {
		var g event.Gap
		var from, to time.Time
		var src sql.NullString
		var lost sql.Null[int64]
		var reason []byte
		if err := rows.Scan(&from, &to, &src, &lost, &reason); err != nil {
			return g, err
		}
		g.FromTS, g.ToTS, g.Source, g.Lost, g.Reason = from.UnixNano(), to.UnixNano(), strOf(src), optOf(lost), string(reason)
		return g, nil
	})
}

func readAccounts(t testing.TB, db *sql.DB, where string, args ...any) []event.Account {
	t.Helper()
	return readRows(t, db, `SELECT ts, kind, id, name FROM accounts`, where, args, func(rows *sql.Rows) (event.Account, error) {
		var a event.Account
		var ts time.Time
		var kind sql.NullString
		if err := rows.Scan(&ts, &kind, &a.ID, &a.Name); err != nil {
			return a, err
		}
		a.TS, a.Kind, a.Name = ts.UnixNano(), strOf(kind), binOf(a.Name)
		return a, nil
	})
}
