//go:build !linux

package testutil

import (
	"errors"
	"os"
)

// startTime returns the start time of process pid; outside Linux it is
// unknown.
func startTime(pid int) (string, error) { return "", errors.New("process start time is Linux-only") }

// childPids returns the direct children of pid; outside Linux it knows none.
func childPids(pid int) []int { return nil }

// uidPids returns the processes whose real uid is uid; outside Linux it knows
// none.
func uidPids(uid uint32) []int { return nil }

// ownerGone reports whether the process pid that started at st has ended;
// outside Linux it cannot tell and says no, so nothing live is removed.
func ownerGone(pid int, st string) bool { return false }

// ownedByRoot reports whether fi belongs to uid 0; outside Linux it says no.
func ownedByRoot(fi os.FileInfo) bool { return false }
