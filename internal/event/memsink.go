package event

import (
	"bytes"
	"sync"
)

// MemSink is a Sink that keeps a deep copy of every record in memory, for
// tests and for tools that inspect a source's output. It is safe for
// concurrent use.
type MemSink struct {
	mu     sync.Mutex
	procs  []Proc
	files  []File
	socks  []Sock
	gaps   []Gap
	accts  []Account
	exes   []Executable
	logins []Login
	dns    []DNS
	ctrs   []Container
}

// keep appends c to *list.
func keep[R any](s *MemSink, list *[]R, c R) {
	s.mu.Lock()
	*list = append(*list, c)
	s.mu.Unlock()
}

// own clones the byte slices bs point to (fields of a record's copy), so
// that the caller may reuse its buffers.
func own(bs ...*[]byte) {
	for _, b := range bs {
		*b = bytes.Clone(*b)
	}
}

// records returns a copy of *list.
func records[R any](s *MemSink, list *[]R) []R {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]R(nil), *list...)
}

// AppendContainer implements ContainerSink.
func (s *MemSink) AppendContainer(r *Container) {
	c := *r
	own(&c.ID, &c.Name, &c.Image, &c.Pod, &c.Namespace, &c.Source)
	keep(s, &s.ctrs, c)
}

// Containers returns a copy of the ctr records received so far.
func (s *MemSink) Containers() []Container { return records(s, &s.ctrs) }

// AppendDNS implements DNSSink.
func (s *MemSink) AppendDNS(r *DNS) {
	c := *r
	own(&c.ClientAddr, &c.ServerAddr, &c.QName, &c.Answers, &c.AnswerAddrs)
	keep(s, &s.dns, c)
}

// DNS returns a copy of the dns records received so far.
func (s *MemSink) DNS() []DNS { return records(s, &s.dns) }

// AppendProc implements Sink.
func (s *MemSink) AppendProc(r *Proc) {
	c := *r
	own(&c.TTY, &c.Comm, &c.Exe, &c.Argv, &c.Cwd, &c.Cgroup, &c.ContainerID)
	keep(s, &s.procs, c)
}

// AppendFile implements Sink.
func (s *MemSink) AppendFile(r *File) {
	c := *r
	own(&c.Path, &c.NewPath)
	keep(s, &s.files, c)
}

// AppendSock implements Sink.
func (s *MemSink) AppendSock(r *Sock) {
	c := *r
	own(&c.LocalAddr, &c.RemoteAddr)
	keep(s, &s.socks, c)
}

// AppendGap implements Sink.
func (s *MemSink) AppendGap(r *Gap) { keep(s, &s.gaps, *r) }

// AppendAccount implements Sink.
func (s *MemSink) AppendAccount(r *Account) { keep(s, &s.accts, *r) }

// AppendLogin implements LoginSink.
func (s *MemSink) AppendLogin(r *Login) {
	c := *r
	own(&c.TTY, &c.UTID, &c.User, &c.RemoteHost, &c.RemoteAddr)
	keep(s, &s.logins, c)
}

// Logins returns a copy of the login records received so far.
func (s *MemSink) Logins() []Login { return records(s, &s.logins) }

// AppendExecutable implements ExeSink.
func (s *MemSink) AppendExecutable(r *Executable) {
	c := *r
	own(&c.SHA256, &c.Path)
	keep(s, &s.exes, c)
}

// Executables returns a copy of the exe records received so far.
func (s *MemSink) Executables() []Executable { return records(s, &s.exes) }

// Procs returns a copy of the proc records received so far.
func (s *MemSink) Procs() []Proc { return records(s, &s.procs) }

// Files returns a copy of the file records received so far.
func (s *MemSink) Files() []File { return records(s, &s.files) }

// Socks returns a copy of the sock records received so far.
func (s *MemSink) Socks() []Sock { return records(s, &s.socks) }

// Gaps returns a copy of the gap records received so far.
func (s *MemSink) Gaps() []Gap { return records(s, &s.gaps) }

// Accounts returns a copy of the acct records received so far.
func (s *MemSink) Accounts() []Account { return records(s, &s.accts) }

// AppendAll appends every record of the slices to s, table by table.
func AppendAll(s Sink, procs []Proc, files []File, socks []Sock, gaps []Gap, accts []Account) {
	for i := range procs {
		s.AppendProc(&procs[i])
	}
	for i := range files {
		s.AppendFile(&files[i])
	}
	for i := range socks {
		s.AppendSock(&socks[i])
	}
	for i := range gaps {
		s.AppendGap(&gaps[i])
	}
	for i := range accts {
		s.AppendAccount(&accts[i])
	}
}

// Discard is a Sink that drops every record (benchmarks of a source's own
// cost).
type Discard struct{}

func (Discard) AppendProc(*Proc)       {}
func (Discard) AppendFile(*File)       {}
func (Discard) AppendSock(*Sock)       {}
func (Discard) AppendGap(*Gap)         {}
func (Discard) AppendAccount(*Account) {}
