package alert

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"time"
)

// Sender delivers an alert to one destination.
type Sender interface {
	Send(ctx context.Context, a Alert) error
	String() string
}

// NewSender returns the Sender of s (checked by Parse).
func NewSender(s Sink) (Sender, error) {
	timeout := time.Duration(s.Timeout)
	if timeout <= 0 {
		timeout = 10 * time.Second
	}
	switch s.Type {
	case "webhook":
		retries := s.Retries
		if retries <= 0 {
			retries = 4
		}
		backoff := time.Duration(s.Backoff)
		if backoff <= 0 {
			backoff = time.Second
		}
		return &Webhook{URL: s.URL, Header: s.Header, Retries: retries, Backoff: backoff, Client: &http.Client{Timeout: timeout}}, nil
	case "syslog":
		return &Syslog{Network: s.Network, Address: s.Address, Facility: facilities[s.facility()], Timeout: timeout}, nil
	case "exec":
		return &Exec{Command: s.Command, Timeout: timeout}, nil
	}
	return nil, fmt.Errorf("sink type %q", s.Type)
}

// Webhook POSTs the alert as JSON; a non-2xx answer or a transport error is
// retried Retries times, waiting Backoff, then twice as long each time.
type Webhook struct {
	URL     string
	Header  map[string]string
	Retries int
	Backoff time.Duration
	Client  *http.Client
}

func (w *Webhook) String() string { return "webhook " + w.URL }

// Send implements Sender.
func (w *Webhook) Send(ctx context.Context, a Alert) error {
	body, err := json.Marshal(a)
	if err != nil {
		return err
	}
	wait := w.Backoff
	var last error
	for attempt := 0; attempt <= w.Retries; attempt++ {
		if attempt > 0 {
			select {
			case <-ctx.Done():
				return fmt.Errorf("%w (last: %v)", ctx.Err(), last)
			case <-time.After(wait):
			}
			wait *= 2
		}
		last = w.post(ctx, body)
		if last == nil {
			return nil
		}
	}
	return fmt.Errorf("%d attempts: %w", w.Retries+1, last)
}

func (w *Webhook) post(ctx context.Context, body []byte) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, w.URL, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "pofr-server-alert")
	for k, v := range w.Header {
		req.Header.Set(k, v)
	}
	resp, err := w.Client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("HTTP %s", resp.Status)
	}
	return nil
}

// Syslog sends the alert as one RFC 5424 message: over UDP one datagram,
// over TCP with octet-counting framing (RFC 6587), over a unix socket a
// datagram (or, if the socket is a stream, newline-terminated).
type Syslog struct {
	Network, Address string
	Facility         int
	Timeout          time.Duration
	Hostname         string // "" is os.Hostname
}

func (s *Syslog) String() string { return "syslog " + s.Network + ":" + s.Address }

// Syslog facilities and severities by name (RFC 5424 section 6.2.1).
var (
	facilities = map[string]int{"kern": 0, "user": 1, "daemon": 3, "auth": 4, "syslog": 5, "authpriv": 10,
		"local0": 16, "local1": 17, "local2": 18, "local3": 19, "local4": 20, "local5": 21, "local6": 22, "local7": 23}
	severities = map[string]int{"emerg": 0, "alert": 1, "crit": 2, "err": 3, "warning": 4, "notice": 5, "info": 6, "debug": 7}
)

// Message returns the RFC 5424 message of a (without framing).
func (s *Syslog) Message(a Alert) []byte {
	host := s.Hostname
	if host == "" {
		host, _ = os.Hostname()
	}
	pri := s.Facility*8 + severities[a.Severity]
	var b bytes.Buffer
	fmt.Fprintf(&b, "<%d>1 %s %s pofr-server %d %s ", pri, a.Time.UTC().Format("2006-01-02T15:04:05.000000Z"),
		header(host, 255), os.Getpid(), header(a.Rule, 32))
	// Structured data: the rule and the match (PARAM-VALUE escapes ", \ and ]).
	b.WriteString(`[pofr@32473 rule="` + sdEscape(a.Rule) + `" kind="` + sdEscape(a.Kind) + `" key="` + sdEscape(a.Key) + `"`)
	if a.Host != "" {
		b.WriteString(` host="` + sdEscape(a.Host) + `"`)
	}
	b.WriteString("] ")
	// MSG: BOM and UTF-8 text, on one line.
	b.WriteString("\xef\xbb\xbf" + strings.NewReplacer("\n", " ", "\r", " ").Replace(a.Summary))
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

func sdEscape(v string) string {
	return strings.NewReplacer(`\`, `\\`, `"`, `\"`, `]`, `\]`).Replace(v)
}

// Send implements Sender.
func (s *Syslog) Send(ctx context.Context, a Alert) error {
	msg := s.Message(a)
	d := net.Dialer{Timeout: s.Timeout}
	network := s.Network
	if network == "unix" {
		network = "unixgram"
	}
	c, err := d.DialContext(ctx, network, s.Address)
	if err != nil && s.Network == "unix" {
		network = "unix"
		c, err = d.DialContext(ctx, network, s.Address)
	}
	if err != nil {
		return err
	}
	defer c.Close()
	c.SetWriteDeadline(time.Now().Add(s.Timeout))
	switch network {
	case "tcp":
		msg = append([]byte(strconv.Itoa(len(msg))+" "), msg...)
	case "unix":
		msg = append(msg, '\n')
	}
	_, err = c.Write(msg)
	return err
}

// Exec runs Command with the alert as JSON on its standard input; a
// non-zero exit or a run longer than Timeout is a failure.
type Exec struct {
	Command []string
	Timeout time.Duration
}

func (e *Exec) String() string { return "exec " + e.Command[0] }

// Send implements Sender.
func (e *Exec) Send(ctx context.Context, a Alert) error {
	body, err := json.Marshal(a)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, e.Timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, e.Command[0], e.Command[1:]...)
	cmd.Stdin = bytes.NewReader(append(body, '\n'))
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		tail := out.String()
		if len(tail) > 512 {
			tail = tail[len(tail)-512:]
		}
		return fmt.Errorf("%v: %s", err, strings.TrimSpace(tail))
	}
	return nil
}
