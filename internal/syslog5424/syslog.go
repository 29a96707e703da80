// Package syslog5424 formats RFC 5424 syslog messages and sends them over
// UDP, TCP (octet-counting framing, RFC 6587) or a unix socket. It is shared
// by the alert sinks and export --follow so both speak the same syslog.
package syslog5424

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Facilities and Severities by name (RFC 5424 section 6.2.1).
var (
	Facilities = map[string]int{"kern": 0, "user": 1, "daemon": 3, "auth": 4, "syslog": 5, "authpriv": 10,
		"local0": 16, "local1": 17, "local2": 18, "local3": 19, "local4": 20, "local5": 21, "local6": 22, "local7": 23}
	Severities = map[string]int{"emerg": 0, "alert": 1, "crit": 2, "err": 3, "warning": 4, "notice": 5, "info": 6, "debug": 7}
)

// Message is one syslog message. SD is the structured data: SD-ID then
// PARAM-NAME, PARAM-VALUE pairs (values are escaped here); empty is "-".
type Message struct {
	Facility, Severity int
	Time               time.Time
	Hostname, App      string // "" is os.Hostname, "-"
	MsgID              string
	SDID               string
	SD                 [][2]string
	Msg                string
}

// Format returns the RFC 5424 message m (without framing). MSG is UTF-8
// with a BOM, on one line.
func Format(m Message) []byte {
	host := m.Hostname
	if host == "" {
		host, _ = os.Hostname()
	}
	var b bytes.Buffer
	fmt.Fprintf(&b, "<%d>1 %s %s %s %d %s ", m.Facility*8+m.Severity, m.Time.UTC().Format("2006-01-02T15:04:05.000000Z"),
		header(host, 255), header(m.App, 48), os.Getpid(), header(m.MsgID, 32))
	if m.SDID == "" {
		b.WriteString("-")
	} else {
		b.WriteString("[" + m.SDID)
		for _, p := range m.SD {
			b.WriteString(" " + p[0] + `="` + sdEscape(p[1]) + `"`)
		}
		b.WriteString("]")
	}
	b.WriteString(" \xef\xbb\xbf")
	b.WriteString(oneLine.Replace(m.Msg))
	return b.Bytes()
}

// header returns v as a header field: printable US-ASCII without spaces,
// at most n bytes; "-" (NILVALUE) if empty.
func header(v string, n int) string {
	out := make([]byte, 0, len(v))
	for i := 0; i < len(v) && len(out) < n; i++ {
		if c := v[i]; c > 32 && c < 127 {
			out = append(out, c)
		} else {
			out = append(out, '_')
		}
	}
	if len(out) == 0 {
		return "-"
	}
	return string(out)
}

var (
	oneLine   = strings.NewReplacer("\n", " ", "\r", " ")
	sdEscaper = strings.NewReplacer(`\`, `\\`, `"`, `\"`, `]`, `\]`)
)

// sdEscape escapes a PARAM-VALUE: ", \ and ].
func sdEscape(v string) string { return sdEscaper.Replace(v) }

// Writer sends messages to one address, keeping the connection between
// calls and dialing again after an error. Network is udp, tcp or unix (a
// datagram socket, or a stream one with newline-terminated messages). Not
// safe for concurrent use.
type Writer struct {
	Network, Address string
	Timeout          time.Duration
	c                net.Conn
	network          string // as dialed: udp, tcp, unixgram or unix
}

func (w *Writer) String() string { return "syslog " + w.Network + ":" + w.Address }

func (w *Writer) dial(ctx context.Context) error {
	d := net.Dialer{Timeout: w.timeout()}
	network := w.Network
	if network == "unix" {
		network = "unixgram"
	}
	c, err := d.DialContext(ctx, network, w.Address)
	if err != nil && w.Network == "unix" {
		network = "unix"
		c, err = d.DialContext(ctx, network, w.Address)
	}
	if err != nil {
		return err
	}
	w.c, w.network = c, network
	return nil
}

func (w *Writer) timeout() time.Duration {
	if w.Timeout <= 0 {
		return 10 * time.Second
	}
	return w.Timeout
}

// Write sends msgs (each from Format): one datagram each, or framed on the
// stream in one write. A nil error means the kernel took every message;
// syslog has no acknowledgement beyond that. On error the connection is
// closed and the next call dials again.
func (w *Writer) Write(ctx context.Context, msgs ...[]byte) error {
	if w.c != nil && w.peerClosed() {
		w.Close()
	}
	if w.c == nil {
		if err := w.dial(ctx); err != nil {
			return err
		}
	}
	w.c.SetWriteDeadline(time.Now().Add(w.timeout()))
	var err error
	switch w.network {
	case "tcp", "unix":
		var b []byte
		for _, m := range msgs {
			if w.network == "tcp" {
				b = append(append(strconv.AppendInt(b, int64(len(m)), 10), ' '), m...)
			} else {
				b = append(append(b, m...), '\n')
			}
		}
		_, err = w.c.Write(b)
	default:
		for _, m := range msgs {
			if _, err = w.c.Write(m); err != nil {
				break
			}
		}
	}
	if err != nil {
		w.Close()
	}
	return err
}

// peerClosed tells whether the receiver closed a stream connection (a
// restarting syslog server): writing on would go to a socket nobody reads.
func (w *Writer) peerClosed() bool {
	sc, ok := w.c.(syscall.Conn)
	if !ok || w.network != "tcp" && w.network != "unix" {
		return false
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return false
	}
	closed := false
	rc.Read(func(fd uintptr) bool {
		var b [1]byte
		n, _, err := syscall.Recvfrom(int(fd), b[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
		closed = n == 0 && err == nil || err != nil && err != syscall.EAGAIN && err != syscall.EINTR
		return true // do not wait for data
	})
	return closed
}

// Close closes the connection.
func (w *Writer) Close() error {
	if w.c == nil {
		return nil
	}
	err := w.c.Close()
	w.c = nil
	return err
}
