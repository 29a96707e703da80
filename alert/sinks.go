package alert

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os/exec"
	"strings"
	"time"

	"github.com/pofr/pofr/internal/syslog5424"
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

// Syslog facilities and severities by name.
var (
	facilities = syslog5424.Facilities
	severities = syslog5424.Severities
)

// Message returns the RFC 5424 message of a (without framing): the rule is
// the MSGID, the match the structured data, the summary the MSG.
func (s *Syslog) Message(a Alert) []byte {
	sd := [][2]string{{"rule", a.Rule}, {"kind", a.Kind}, {"key", a.Key}}
	if a.Host != "" {
		sd = append(sd, [2]string{"host", a.Host})
	}
	return syslog5424.Format(syslog5424.Message{Facility: s.Facility, Severity: severities[a.Severity], Time: a.Time,
		Hostname: s.Hostname, App: "pofr-server", MsgID: a.Rule, SDID: "pofr@32473", SD: sd, Msg: a.Summary})
}

// Send implements Sender: one connection per alert.
func (s *Syslog) Send(ctx context.Context, a Alert) error {
	w := &syslog5424.Writer{Network: s.Network, Address: s.Address, Timeout: s.Timeout}
	defer w.Close()
	return w.Write(ctx, s.Message(a))
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
