package bench

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"
)

// PollConfig describes a POFR-style /proc poller (POFR's client/scanproc.pl):
// every pass reads /proc, and for each process its cmdline, status and fd
// links, then copies /proc/net/{tcp,tcp6,udp,udp6}, writes both as gzip
// snapshots and sleeps Period.
type PollConfig struct {
	Proc   ProcFS        // "/proc"
	Period time.Duration // sleep between passes: 300 ms in POFR
	OutDir string        // where the snapshots go: <ns>.proc.gz, <ns>.net.gz
}

// netTables are the /proc/net files a pass copies, with their protocol and
// family.
var netTables = []struct {
	file, proto string
	family      uint8
}{{"tcp", "tcp", 4}, {"tcp6", "tcp", 6}, {"udp", "udp", 4}, {"udp6", "udp", 6}}

// Poll runs passes until ctx is done.
func Poll(ctx context.Context, cfg PollConfig) error {
	var pb, nb bytes.Buffer
	for {
		ts := time.Now().UnixNano()
		pb.Reset()
		nb.Reset()
		pollProcs(cfg.Proc, &pb)
		for _, t := range netTables {
			b, err := os.ReadFile(filepath.Join(string(cfg.Proc), "net", t.file))
			if err != nil {
				continue
			}
			fmt.Fprintf(&nb, "# %s\n", t.file)
			nb.Write(b)
		}
		for _, w := range []struct {
			ext string
			b   []byte
		}{{"proc", pb.Bytes()}, {"net", nb.Bytes()}} {
			if err := writeGzip(filepath.Join(cfg.OutDir, fmt.Sprintf("%d.%s.gz", ts, w.ext)), w.b); err != nil {
				return err
			}
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(cfg.Period):
		}
	}
}

// pollProcs writes one line per process: pid, ppid, uid, gid, name,
// cmdline (arguments joined by spaces) and fd link targets, tab-separated.
// Processes that vanish mid-read are written with what was read, as POFR
// does.
func pollProcs(proc ProcFS, w *bytes.Buffer) {
	ents, err := os.ReadDir(string(proc))
	if err != nil {
		return
	}
	var fds []string
	for _, e := range ents {
		if _, err := strconv.Atoi(e.Name()); err != nil {
			continue
		}
		dir := filepath.Join(string(proc), e.Name())
		cmd, _ := os.ReadFile(filepath.Join(dir, "cmdline"))
		cmd = bytes.TrimRight(cmd, "\x00")
		for i, c := range cmd {
			if c == 0 || c == '\t' || c == '\n' {
				cmd[i] = ' '
			}
		}
		st, _ := os.ReadFile(filepath.Join(dir, "status"))
		var ppid, uid, gid, name string
		for line := range strings.SplitSeq(string(st), "\n") {
			k, v, _ := strings.Cut(line, ":")
			v = strings.TrimSpace(v)
			switch k {
			case "PPid":
				ppid = v
			case "Uid":
				uid, _, _ = strings.Cut(v, "\t")
			case "Gid":
				gid, _, _ = strings.Cut(v, "\t")
			case "Name":
				name = v
			}
		}
		fds = fds[:0]
		fdDir := filepath.Join(dir, "fd")
		if fe, err := os.ReadDir(fdDir); err == nil {
			for _, f := range fe {
				if l, err := os.Readlink(filepath.Join(fdDir, f.Name())); err == nil {
					fds = append(fds, l)
				}
			}
		}
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", e.Name(), ppid, uid, gid, name, cmd, strings.Join(fds, " "))
	}
}

func writeGzip(path string, b []byte) error {
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("write snapshot: %w", err)
	}
	zw := gzip.NewWriter(f)
	_, err = zw.Write(b)
	if cerr := zw.Close(); err == nil {
		err = cerr
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("write snapshot %s: %w", path, err)
	}
	return nil
}

// SockKey names a socket by protocol, family and ports: the client end of a
// loopback connection the harness made.
type SockKey struct {
	Proto      string
	Family     uint8
	LocalPort  uint16
	RemotePort uint16
}

// PollSeen is what a poller's snapshots show.
type PollSeen struct {
	Passes int
	// Words holds every space-separated cmdline word seen that starts with
	// "pofrbench-" (the markers of [RunProcs]).
	Words map[string]bool
	// Open maps a socket seen open (a /proc/net line with a non-zero inode)
	// to the pid that held the inode in the same pass, or 0 if none did.
	Open map[SockKey]int
	// Bytes is the gzip size of all snapshots; RawBytes the uncompressed.
	Bytes, RawBytes int64
}

// ReadPoll reads the snapshots a [Poll] wrote into dir.
func ReadPoll(dir string) (*PollSeen, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("read poller snapshots: %w", err)
	}
	seen := &PollSeen{Words: map[string]bool{}, Open: map[SockKey]int{}}
	names := make([]string, 0, len(ents))
	for _, e := range ents {
		names = append(names, e.Name())
	}
	slices.Sort(names)
	for _, n := range names {
		stem, ok := strings.CutSuffix(n, ".proc.gz")
		if !ok {
			continue
		}
		proc, psize, err := readGzip(filepath.Join(dir, n))
		if err != nil {
			return nil, err
		}
		net, nsize, err := readGzip(filepath.Join(dir, stem+".net.gz"))
		if err != nil {
			return nil, err
		}
		seen.Passes++
		seen.Bytes += psize + nsize
		seen.RawBytes += int64(len(proc) + len(net))
		owners := parsePollProcs(proc, seen.Words)
		for _, s := range ParseProcNet(net) {
			if s.Inode != 0 {
				if _, ok := seen.Open[s.Key]; !ok || seen.Open[s.Key] == 0 {
					seen.Open[s.Key] = owners[s.Inode]
				}
			}
		}
	}
	return seen, nil
}

func readGzip(path string) ([]byte, int64, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, 0, fmt.Errorf("read snapshot: %w", err)
	}
	zr, err := gzip.NewReader(bytes.NewReader(raw))
	if err != nil {
		return nil, 0, fmt.Errorf("read snapshot %s: %w", path, err)
	}
	var b bytes.Buffer
	if _, err := b.ReadFrom(zr); err != nil {
		return nil, 0, fmt.Errorf("read snapshot %s: %w", path, err)
	}
	return b.Bytes(), int64(len(raw)), nil
}

// parsePollProcs adds the marker words of a proc snapshot to words and
// returns its socket inode → pid map.
func parsePollProcs(b []byte, words map[string]bool) map[uint64]int {
	owners := map[uint64]int{}
	for line := range bytes.SplitSeq(b, []byte("\n")) {
		f := strings.Split(string(line), "\t")
		if len(f) != 7 {
			continue
		}
		for w := range strings.FieldsSeq(f[5]) {
			if strings.HasPrefix(w, "pofrbench-") {
				words[w] = true
			}
		}
		pid, _ := strconv.Atoi(f[0])
		for l := range strings.FieldsSeq(f[6]) {
			if s, ok := strings.CutPrefix(l, "socket:["); ok {
				if ino, err := strconv.ParseUint(strings.TrimSuffix(s, "]"), 10, 64); err == nil {
					owners[ino] = pid
				}
			}
		}
	}
	return owners
}

// NetSock is one line of /proc/net/{tcp,udp}{,6}.
type NetSock struct {
	Key   SockKey
	State uint8
	UID   uint32
	Inode uint64
}

// ParseProcNet decodes /proc/net/{tcp,tcp6,udp,udp6} contents, each table
// introduced by a "# <file>" line as [Poll] writes them. Malformed lines
// are skipped.
func ParseProcNet(b []byte) []NetSock {
	var out []NetSock
	proto, family := "", uint8(0)
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		line := sc.Text()
		if name, ok := strings.CutPrefix(line, "# "); ok {
			proto, family = "", 0
			for _, t := range netTables {
				if t.file == name {
					proto, family = t.proto, t.family
				}
			}
			continue
		}
		f := strings.Fields(line)
		if proto == "" || len(f) < 10 || f[0] == "sl" {
			continue
		}
		lport, ok1 := parseHexPort(f[1])
		rport, ok2 := parseHexPort(f[2])
		st, err1 := strconv.ParseUint(f[3], 16, 8)
		uid, err2 := strconv.ParseUint(f[7], 10, 32)
		ino, err3 := strconv.ParseUint(f[9], 10, 64)
		if !ok1 || !ok2 || err1 != nil || err2 != nil || err3 != nil {
			continue
		}
		out = append(out, NetSock{
			Key:   SockKey{Proto: proto, Family: family, LocalPort: lport, RemotePort: rport},
			State: uint8(st), UID: uint32(uid), Inode: ino,
		})
	}
	return out
}

// parseHexPort decodes the port of "0100007F:1F90" (address as hex
// 32-bit words, 8 or 32 digits; port big-endian hex).
func parseHexPort(s string) (port uint16, ok bool) {
	a, p, found := strings.Cut(s, ":")
	if !found || (len(a) != 8 && len(a) != 32) {
		return 0, false
	}
	if _, err := hex.DecodeString(a); err != nil {
		return 0, false
	}
	v, err := strconv.ParseUint(p, 16, 16)
	if err != nil {
		return 0, false
	}
	return uint16(v), true
}
