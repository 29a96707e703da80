package main

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/pofr/pofr/internal/cli"
	"github.com/pofr/pofr/spool"
	"github.com/pofr/pofr/uplink"
)

var errLocked = errors.New("locked by another process")

// pidLock is an flock-ed pid file: the lock, not the file's existence, says a
// collector runs, so a pid file left by kill -9 never blocks a restart.
type pidLock struct {
	path string
	f    *os.File
}

func acquireLock(path string) (*pidLock, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, fmt.Errorf("open lock %s: %w", path, err)
	}
	l := &pidLock{path: path, f: f}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, unix.EWOULDBLOCK) {
			return l, errLocked
		}
		return nil, fmt.Errorf("lock %s: %w", path, err)
	}
	if err := f.Truncate(0); err != nil {
		return nil, fmt.Errorf("write pid to %s: %w", path, err)
	}
	if _, err := f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0); err != nil {
		return nil, fmt.Errorf("write pid to %s: %w", path, err)
	}
	return l, nil
}

// holder returns the pid written by the process holding the lock.
func (l *pidLock) holder() string {
	b, _ := os.ReadFile(l.path)
	if s := strings.TrimSpace(string(b)); s != "" {
		return s
	}
	return "unknown"
}

func (l *pidLock) release() {
	if l.f != nil {
		l.f.Close() // drops the flock; the file stays, harmlessly
	}
}

// lockHeld reports whether a collector holds the lock at path.
func lockHeld(path string) bool {
	f, err := os.Open(path)
	if err != nil {
		return false
	}
	defer f.Close()
	if err := unix.Flock(int(f.Fd()), unix.LOCK_SH|unix.LOCK_NB); err != nil {
		return errors.Is(err, unix.EWOULDBLOCK)
	}
	unix.Flock(int(f.Fd()), unix.LOCK_UN)
	return false
}

// stopCollector sends SIGTERM to the collector holding the lock at path and
// waits until it has released it. It returns the pid stopped, or 0 if none ran.
func stopCollector(ctx context.Context, path string, wait time.Duration) (int, error) {
	if !lockHeld(path) {
		return 0, nil
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, fmt.Errorf("read %s: %w", path, err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || pid <= 1 {
		return 0, fmt.Errorf("%s holds no pid (%q)", path, b)
	}
	if err := unix.Kill(pid, unix.SIGTERM); err != nil {
		return 0, fmt.Errorf("stop collector pid %d: %w", pid, err)
	}
	deadline := time.Now().Add(wait)
	for lockHeld(path) {
		if time.Now().After(deadline) {
			return 0, fmt.Errorf("collector pid %d still running %v after SIGTERM", pid, wait)
		}
		select {
		case <-ctx.Done():
			return 0, ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
	return pid, nil
}

// identity is who this collector signs and names its segments as.
type identity struct {
	hostID     string
	key        ed25519.PrivateKey
	standalone bool
}

func loadIdentity(f *runFlags) (*identity, error) {
	keyPath := filepath.Join(f.configDir, "signing.key")
	if f.standalone {
		if err := os.MkdirAll(f.configDir, 0o700); err != nil {
			return nil, fmt.Errorf("create config dir: %w", err)
		}
		key, err := spool.LoadKey(keyPath)
		if errors.Is(err, os.ErrNotExist) {
			key, err = spool.GenerateKey(keyPath)
		}
		if err != nil {
			return nil, fmt.Errorf("signing key: %w", err)
		}
		return &identity{hostID: f.hostID, key: key, standalone: true}, nil
	}
	cfg, err := uplink.LoadConfig(f.configDir)
	if errors.Is(err, os.ErrNotExist) {
		return nil, cli.Exit(exitNotRegistered, fmt.Errorf("this host is not registered (no %s): run 'pofr-collector register --server HOST', or use --standalone to record locally",
			filepath.Join(f.configDir, "server.json")))
	}
	if err != nil {
		return nil, err
	}
	key, err := spool.LoadKey(keyPath)
	if err != nil {
		return nil, fmt.Errorf("signing key: %w", err)
	}
	return &identity{hostID: cfg.HostID, key: key}, nil
}
