package bench

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
)

// Errors that make the harness leave audit alone rather than measure it.
var (
	// ErrAuditLocked: the audit configuration is immutable (enabled 2) until
	// reboot.
	ErrAuditLocked = errors.New("bench: audit configuration is locked (enabled 2)")
	// ErrAuditBusy: another audit daemon owns the audit pid.
	ErrAuditBusy = errors.New("bench: another audit daemon is running")
	// ErrAuditRules: audit rules are already loaded; measuring would mix them
	// in, and removing them would change the machine.
	ErrAuditRules = errors.New("bench: audit rules already loaded")
)

// AuditStatus is the kernel's audit state as auditctl -s prints it, the
// part the harness changes and must put back.
type AuditStatus struct {
	Enabled         int
	Failure         int
	PID             int
	RateLimit       int
	BacklogLimit    int
	Lost            int64
	Backlog         int
	BacklogWaitTime int
}

// ParseAuditStatus decodes the output of auditctl -s ("enabled 1" lines).
func ParseAuditStatus(out []byte) (AuditStatus, error) {
	var s AuditStatus
	seen := 0
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 2 {
			continue
		}
		v, err := strconv.ParseInt(f[1], 10, 64)
		if err != nil {
			continue
		}
		switch f[0] {
		case "enabled":
			s.Enabled = int(v)
		case "failure":
			s.Failure = int(v)
		case "pid":
			s.PID = int(v)
		case "rate_limit":
			s.RateLimit = int(v)
		case "backlog_limit":
			s.BacklogLimit = int(v)
		case "lost":
			s.Lost = v
		case "backlog":
			s.Backlog = int(v)
		case "backlog_wait_time":
			s.BacklogWaitTime = int(v)
		default:
			continue
		}
		seen++
	}
	if seen < 4 {
		return s, fmt.Errorf("parse auditctl -s output %.60q: not an audit status", out)
	}
	return s, nil
}

// ParseAuditRules decodes auditctl -l: one rule per line, or none when it
// prints "No rules".
func ParseAuditRules(out []byte) []string {
	var rules []string
	for line := range strings.SplitSeq(string(out), "\n") {
		line = strings.TrimSpace(line)
		if line != "" && line != "No rules" {
			rules = append(rules, line)
		}
	}
	return rules
}

// AuditCount is what a window of a raw audit log holds.
type AuditCount struct {
	Execs   int   // successful execve (59) or execveat (322) SYSCALL records, from anyone
	Matched int   // of those, from a child of the spawner whose pid is in the set
	Records int   // records of any type in the window
	Bytes   int64 // bytes of the records in the window
}

// CountAuditExecs reads a RAW-format audit log and counts, among records
// stamped in [from, to] (seconds since the epoch, from "msg=audit(T:serial)"),
// the successful exec syscalls machine-wide (failed ones, such as a shell's
// PATH search, are not execs a recorder could see) and those of the
// spawner's children: ppid
// equal to spawner and pid in pids (each pid counted as often as it was
// spawned).
func CountAuditExecs(r io.Reader, from, to float64, spawner int, pids []int32) (AuditCount, error) {
	want := map[int]int{}
	for _, p := range pids {
		want[int(p)]++
	}
	var c AuditCount
	br := bufio.NewReaderSize(r, 1<<16)
	for {
		line, err := br.ReadBytes('\n')
		if len(line) > 0 {
			countAuditLine(line, from, to, spawner, want, &c)
		}
		if err == io.EOF {
			return c, nil
		}
		if err != nil {
			return c, fmt.Errorf("read audit log: %w", err)
		}
	}
}

func countAuditLine(line []byte, from, to float64, spawner int, want map[int]int, c *AuditCount) {
	_, rest, ok := bytes.Cut(line, []byte("msg=audit("))
	if !ok {
		return
	}
	stamp, _, ok := bytes.Cut(rest, []byte(":"))
	if !ok {
		return
	}
	t, err := strconv.ParseFloat(string(stamp), 64)
	if err != nil || t < from || t > to {
		return
	}
	c.Records++
	c.Bytes += int64(len(line))
	if !bytes.HasPrefix(line, []byte("type=SYSCALL ")) {
		return
	}
	fields := auditFields(rest)
	if sc := fields["syscall"]; sc != "59" && sc != "322" || fields["success"] != "yes" {
		return
	}
	c.Execs++
	ppid, _ := strconv.Atoi(fields["ppid"])
	pid, _ := strconv.Atoi(fields["pid"])
	if ppid == spawner && want[pid] > 0 {
		want[pid]--
		c.Matched++
	}
}

// auditFields splits the key=value pairs of a record after its stamp.
func auditFields(b []byte) map[string]string {
	m := map[string]string{}
	for f := range strings.FieldsSeq(string(b)) {
		if k, v, ok := strings.Cut(f, "="); ok {
			m[k] = v
		}
	}
	return m
}
