package testutil

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

// startTime returns the start time of process pid in clock ticks since boot
// (field 22 of /proc/PID/stat), which together with the pid names one
// process across pid reuse.
func startTime(pid int) (string, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return "", fmt.Errorf("read start time of pid %d: %w", pid, err)
	}
	// The command name (field 2) may hold spaces and parentheses; the fields
	// after the last ')' start with field 3.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return "", fmt.Errorf("read start time of pid %d: malformed stat %q", pid, b)
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 20 {
		return "", fmt.Errorf("read start time of pid %d: short stat %q", pid, b)
	}
	return f[19], nil
}

// childPids returns the direct children of pid.
func childPids(pid int) []int {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/children", pid, pid))
	if err != nil {
		return nil
	}
	var pids []int
	for _, f := range strings.Fields(string(b)) {
		if p, err := strconv.Atoi(f); err == nil {
			pids = append(pids, p)
		}
	}
	return pids
}

// uidPids returns the processes whose real uid is uid.
func uidPids(uid uint32) []int {
	dirs, _ := filepath.Glob("/proc/[0-9]*/status")
	var pids []int
	for _, d := range dirs {
		b, err := os.ReadFile(d)
		if err != nil {
			continue
		}
		for line := range strings.Lines(string(b)) {
			v, ok := strings.CutPrefix(line, "Uid:")
			if !ok {
				continue
			}
			if f := strings.Fields(v); len(f) > 0 && f[0] == strconv.FormatUint(uint64(uid), 10) {
				if p, err := strconv.Atoi(filepath.Base(filepath.Dir(d))); err == nil {
					pids = append(pids, p)
				}
			}
			break
		}
	}
	return pids
}

// ownerGone reports whether the process pid that started at st has ended.
func ownerGone(pid int, st string) bool {
	cur, err := startTime(pid)
	if err != nil {
		_, statErr := os.Stat(fmt.Sprintf("/proc/%d", pid))
		return errors.Is(statErr, os.ErrNotExist)
	}
	return cur != st
}

// ownedByRoot reports whether fi, from os.Stat, belongs to uid 0.
func ownedByRoot(fi os.FileInfo) bool {
	st, ok := fi.Sys().(*syscall.Stat_t)
	return ok && st.Uid == 0
}
