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

// AppendContainer implements ContainerSink.
func (s *MemSink) AppendContainer(r *Container) {
	c := *r
	for _, b := range []*[]byte{&c.ID, &c.Name, &c.Image, &c.Pod, &c.Namespace, &c.Source} {
		*b = bytes.Clone(*b)
	}
	s.mu.Lock()
	s.ctrs = append(s.ctrs, c)
	s.mu.Unlock()
}

// Containers returns a copy of the ctr records received so far.
func (s *MemSink) Containers() []Container {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Container(nil), s.ctrs...)
}

// AppendDNS implements DNSSink.
func (s *MemSink) AppendDNS(r *DNS) {
	c := *r
	for _, b := range []*[]byte{&c.ClientAddr, &c.ServerAddr, &c.QName, &c.Answers, &c.AnswerAddrs} {
		*b = bytes.Clone(*b)
	}
	s.mu.Lock()
	s.dns = append(s.dns, c)
	s.mu.Unlock()
}

// DNS returns a copy of the dns records received so far.
func (s *MemSink) DNS() []DNS {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]DNS(nil), s.dns...)
}

// AppendProc implements Sink.
func (s *MemSink) AppendProc(r *Proc) {
	c := *r
	for _, b := range []*[]byte{&c.TTY, &c.Comm, &c.Exe, &c.Argv, &c.Cwd, &c.Cgroup, &c.ContainerID} {
		*b = bytes.Clone(*b)
	}
	s.mu.Lock()
	s.procs = append(s.procs, c)
	s.mu.Unlock()
}

// AppendFile implements Sink.
func (s *MemSink) AppendFile(r *File) {
	c := *r
	c.Path, c.NewPath = bytes.Clone(c.Path), bytes.Clone(c.NewPath)
	s.mu.Lock()
	s.files = append(s.files, c)
	s.mu.Unlock()
}

// AppendSock implements Sink.
func (s *MemSink) AppendSock(r *Sock) {
	c := *r
	c.LocalAddr, c.RemoteAddr = bytes.Clone(c.LocalAddr), bytes.Clone(c.RemoteAddr)
	s.mu.Lock()
	s.socks = append(s.socks, c)
	s.mu.Unlock()
}

// AppendGap implements Sink.
func (s *MemSink) AppendGap(r *Gap) { s.mu.Lock(); s.gaps = append(s.gaps, *r); s.mu.Unlock() }

// AppendAccount implements Sink.
func (s *MemSink) AppendAccount(r *Account) {
	s.mu.Lock()
	s.accts = append(s.accts, *r)
	s.mu.Unlock()
}

// AppendLogin implements LoginSink.
func (s *MemSink) AppendLogin(r *Login) {
	c := *r
	for _, b := range []*[]byte{&c.TTY, &c.UTID, &c.User, &c.RemoteHost, &c.RemoteAddr} {
		*b = bytes.Clone(*b)
	}
	s.mu.Lock()
	s.logins = append(s.logins, c)
	s.mu.Unlock()
}

// Logins returns a copy of the login records received so far.
func (s *MemSink) Logins() []Login {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Login(nil), s.logins...)
}

// AppendExecutable implements ExeSink.
func (s *MemSink) AppendExecutable(r *Executable) {
	c := *r
	c.SHA256, c.Path = bytes.Clone(c.SHA256), bytes.Clone(c.Path)
	s.mu.Lock()
	s.exes = append(s.exes, c)
	s.mu.Unlock()
}

// Executables returns a copy of the exe records received so far.
func (s *MemSink) Executables() []Executable {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Executable(nil), s.exes...)
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
