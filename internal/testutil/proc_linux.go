package testutil

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"

	"github.com/pofr/pofr/internal/procfs"
)

// startTime returns the start time of process pid in clock ticks since boot
// (field 22 of /proc/PID/stat), which together with the pid names one
// process across pid reuse.
func startTime(pid int) (string, error) {
	b, err := os.ReadFile(procfs.New("").PIDPath(int32(pid), "stat"))
	if err != nil {
		return "", fmt.Errorf("read start time of pid %d: %w", pid, err)
	}
	st, err := procfs.ParseStat(b)
	if err != nil {
		return "", fmt.Errorf("read start time of pid %d: %w", pid, err)
	}
	return strconv.FormatUint(st.StartTicks, 10), nil
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
	fs := procfs.New("")
	all, _ := fs.PIDs()
	var pids []int
	for _, pid := range all {
		b, err := os.ReadFile(fs.PIDPath(pid, "status"))
		if err != nil {
			continue
		}
		if u, _, _, _, err := procfs.ParseStatusIDs(b); err == nil && u == uid {
			pids = append(pids, int(pid))
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
