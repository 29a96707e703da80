package event

import "sync"

// MemSink is a Sink that keeps every record in memory, for tests and for
// tools that inspect a source's output. It is safe for concurrent use.
type MemSink struct {
	mu    sync.Mutex
	procs []Proc
	files []File
	socks []Sock
	gaps  []Gap
	accts []Account
}

// AppendProc implements Sink.
func (s *MemSink) AppendProc(r *Proc) { s.mu.Lock(); s.procs = append(s.procs, *r); s.mu.Unlock() }

// AppendFile implements Sink.
func (s *MemSink) AppendFile(r *File) { s.mu.Lock(); s.files = append(s.files, *r); s.mu.Unlock() }

// AppendSock implements Sink.
func (s *MemSink) AppendSock(r *Sock) { s.mu.Lock(); s.socks = append(s.socks, *r); s.mu.Unlock() }

// AppendGap implements Sink.
func (s *MemSink) AppendGap(r *Gap) { s.mu.Lock(); s.gaps = append(s.gaps, *r); s.mu.Unlock() }

// AppendAccount implements Sink.
func (s *MemSink) AppendAccount(r *Account) {
	s.mu.Lock()
	s.accts = append(s.accts, *r)
	s.mu.Unlock()
}

// Procs returns a copy of the proc records received so far.
func (s *MemSink) Procs() []Proc {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Proc(nil), s.procs...)
}

// Files returns a copy of the file records received so far.
func (s *MemSink) Files() []File {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]File(nil), s.files...)
}

// Socks returns a copy of the sock records received so far.
func (s *MemSink) Socks() []Sock {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Sock(nil), s.socks...)
}

// Gaps returns a copy of the gap records received so far.
func (s *MemSink) Gaps() []Gap {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Gap(nil), s.gaps...)
}

// Accounts returns a copy of the acct records received so far.
func (s *MemSink) Accounts() []Account {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Account(nil), s.accts...)
}
