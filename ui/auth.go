package ui

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"fmt"
	"os"
	"strings"
	"sync"
	"time"

	"golang.org/x/crypto/bcrypt"
)

// Auth checks HTTP basic credentials against bcrypt hashes.
type Auth struct {
	users map[string][]byte
	// dummy is compared for unknown users, so that they take as long as
	// known ones.
	dummy []byte

	mu sync.Mutex
	// ok remembers credentials that verified recently: bcrypt costs tens of
	// milliseconds, and a page loads a stylesheet and a script besides.
	ok map[[32]byte]time.Time
}

// authTTL is how long a verified password is remembered.
const authTTL = 5 * time.Minute

// ParseAuth reads an auth file: one "user:bcrypt-hash" per line (as
// htpasswd -B writes them), blank lines and lines starting with # ignored.
func ParseAuth(b []byte) (*Auth, error) {
	a := &Auth{users: map[string][]byte{}, ok: map[[32]byte]time.Time{}}
	sc := bufio.NewScanner(bytes.NewReader(b))
	n := 0
	for sc.Scan() {
		n++
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		user, hash, ok := strings.Cut(line, ":")
		if !ok || user == "" {
			return nil, fmt.Errorf("auth file line %d: want user:bcrypt-hash", n)
		}
		if _, err := bcrypt.Cost([]byte(hash)); err != nil {
			return nil, fmt.Errorf("auth file line %d (user %q): not a bcrypt hash: %w", n, user, err)
		}
		if _, dup := a.users[user]; dup {
			return nil, fmt.Errorf("auth file line %d: user %q twice", n, user)
		}
		a.users[user] = []byte(hash)
		a.dummy = []byte(hash)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("auth file: %w", err)
	}
	if len(a.users) == 0 {
		return nil, fmt.Errorf("auth file: no users")
	}
	return a, nil
}

// LoadAuth reads the auth file at path.
func LoadAuth(path string) (*Auth, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read auth file: %w", err)
	}
	return ParseAuth(b)
}

// Check reports whether pass is user's password.
func (a *Auth) Check(user, pass string) bool {
	key := sha256.Sum256([]byte(user + "\x00" + pass))
	now := time.Now()
	a.mu.Lock()
	exp, cached := a.ok[key]
	a.mu.Unlock()
	if cached && now.Before(exp) {
		return true
	}
	hash, known := a.users[user]
	if !known {
		hash = a.dummy
	}
	err := bcrypt.CompareHashAndPassword(hash, []byte(pass))
	if err != nil || !known {
		return false
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	for k, e := range a.ok {
		if now.After(e) {
			delete(a.ok, k)
		}
	}
	if len(a.ok) < 1024 {
		a.ok[key] = now.Add(authTTL)
	}
	return true
}
