package alert

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"regexp"
	"strings"
	"time"
)

// Rule kinds.
const (
	KindHostSilent  = "host_silent"  // an active host whose newest data is older than After
	KindGap         = "gap"          // a gap row, optionally only of Reasons (gap sources)
	KindChainBreak  = "chain_break"  // a ledger row with chain_ok = 0
	KindQuarantine  = "quarantine"   // a quarantined segment, optionally only of Reasons (classes)
	KindRevokedHost = "revoked_host" // a host with status revoked
	KindSQL         = "sql"          // every row of Query
)

// Rule is one detection rule of the rules file.
type Rule struct {
	Name     string   `json:"name"`
	Kind     string   `json:"kind"`
	Severity string   `json:"severity,omitempty"` // syslog severity name; default warning
	After    Duration `json:"after,omitempty"`    // host_silent
	Reasons  []string `json:"reasons,omitempty"`  // gap: sources; quarantine: classes
	// Query (sql) is one SELECT over the views, run in a read-only
	// transaction. Each row is a match; its key is the column alert_key if
	// the query has one, else all columns.
	Query string `json:"query,omitempty"`
}

// Duration is a time.Duration written as "1h30m" in JSON.
type Duration time.Duration

// UnmarshalJSON implements json.Unmarshaler.
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("duration: want a string such as \"1h\": %w", err)
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return err
	}
	*d = Duration(v)
	return nil
}

// Sink is one destination of the rules file.
type Sink struct {
	Type string `json:"type"` // webhook, syslog or exec

	// webhook
	URL     string            `json:"url,omitempty"`
	Retries int               `json:"retries,omitempty"` // attempts after the first (default 4)
	Backoff Duration          `json:"backoff,omitempty"` // first wait, doubled each retry (default 1s)
	Timeout Duration          `json:"timeout,omitempty"` // of one request or command (default 10s)
	Header  map[string]string `json:"header,omitempty"`

	// syslog
	Network  string `json:"network,omitempty"` // udp, tcp or unix (unixgram then unix stream)
	Address  string `json:"address,omitempty"`
	Facility string `json:"facility,omitempty"` // default daemon

	// exec
	Command []string `json:"command,omitempty"` // argv; the alert is on stdin as JSON
}

// Config is a rules file.
type Config struct {
	Rules []Rule `json:"rules"`
	Sinks []Sink `json:"sinks"`
}

var nameRE = regexp.MustCompile(`^[A-Za-z0-9_.-]{1,64}$`)

// maxConfigBytes bounds a rules file.
const maxConfigBytes = 1 << 20

// Load reads and checks a rules file.
func Load(path string) (*Config, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("rules: %w", err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxConfigBytes+1))
	if err != nil {
		return nil, fmt.Errorf("rules: %w", err)
	}
	if len(b) > maxConfigBytes {
		return nil, fmt.Errorf("rules %s: larger than %d bytes", path, maxConfigBytes)
	}
	c, err := Parse(b)
	if err != nil {
		return nil, fmt.Errorf("rules %s: %w", path, err)
	}
	return c, nil
}

// Parse decodes and checks a rules file's bytes.
func Parse(b []byte) (*Config, error) {
	var c Config
	dec := json.NewDecoder(strings.NewReader(string(b)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&c); err != nil {
		return nil, err
	}
	if len(c.Rules) == 0 {
		return nil, errors.New("no rules")
	}
	if len(c.Sinks) == 0 {
		return nil, errors.New("no sinks")
	}
	seen := map[string]bool{}
	for i, r := range c.Rules {
		if !nameRE.MatchString(r.Name) {
			return nil, fmt.Errorf("rule %d: name %q: want 1-64 of A-Z a-z 0-9 _ . -", i+1, r.Name)
		}
		if seen[r.Name] {
			return nil, fmt.Errorf("rule %q: name used twice", r.Name)
		}
		seen[r.Name] = true
		if _, ok := severities[r.severity()]; !ok {
			return nil, fmt.Errorf("rule %q: severity %q", r.Name, r.Severity)
		}
		switch r.Kind {
		case KindHostSilent:
			if r.After <= 0 {
				return nil, fmt.Errorf("rule %q: host_silent needs \"after\"", r.Name)
			}
		case KindGap, KindQuarantine, KindChainBreak, KindRevokedHost:
		case KindSQL:
			q := strings.TrimSpace(r.Query)
			if !strings.HasPrefix(strings.ToUpper(q), "SELECT") && !strings.HasPrefix(strings.ToUpper(q), "WITH") {
				return nil, fmt.Errorf("rule %q: query must be a SELECT", r.Name)
			}
		default:
			return nil, fmt.Errorf("rule %q: kind %q: want host_silent, gap, chain_break, quarantine, revoked_host or sql", r.Name, r.Kind)
		}
	}
	for i, s := range c.Sinks {
		switch s.Type {
		case "webhook":
			if !strings.HasPrefix(s.URL, "http://") && !strings.HasPrefix(s.URL, "https://") {
				return nil, fmt.Errorf("sink %d: webhook url %q", i+1, s.URL)
			}
		case "syslog":
			if s.Network != "udp" && s.Network != "tcp" && s.Network != "unix" || s.Address == "" {
				return nil, fmt.Errorf("sink %d: syslog wants network udp, tcp or unix and an address", i+1)
			}
			if _, ok := facilities[s.facility()]; !ok {
				return nil, fmt.Errorf("sink %d: syslog facility %q", i+1, s.Facility)
			}
		case "exec":
			if len(s.Command) == 0 || !strings.HasPrefix(s.Command[0], "/") {
				return nil, fmt.Errorf("sink %d: exec wants a command with an absolute path", i+1)
			}
		default:
			return nil, fmt.Errorf("sink %d: type %q: want webhook, syslog or exec", i+1, s.Type)
		}
	}
	return &c, nil
}

func (r Rule) severity() string {
	if r.Severity == "" {
		return "warning"
	}
	return r.Severity
}

func (s Sink) facility() string {
	if s.Facility == "" {
		return "daemon"
	}
	return s.Facility
}
