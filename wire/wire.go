// Package wire is the protocol between pofr-collector and pofr-server beyond
// SSH and SFTP themselves: the registration request and response exchanged on
// the "pofr-register" subsystem, the deregistration reply, and the rules for
// the names of uploaded segment files. Both sides import it, and every parser
// here treats its input as hostile.
package wire

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"regexp"
	"strings"
	"unicode/utf8"

	"github.com/pofr/pofr/spool"
	"golang.org/x/crypto/ssh"
)

// Subsystem names and the account used for registration.
const (
	// RegisterUser is the SSH user name for registration connections.
	RegisterUser = "register"
	// RegisterSubsystem carries one Request and one Response.
	RegisterSubsystem = "pofr-register"
	// DeregisterSubsystem, opened by a registered host with its upload key,
	// revokes the host and answers with a Response.
	DeregisterSubsystem = "pofr-deregister"
	// Version is the protocol version in Request.Version.
	Version = 1
	// MaxRequestBytes bounds a registration request on the wire.
	MaxRequestBytes = 64 << 10
	// MaxResponseBytes bounds a response on the wire.
	MaxResponseBytes = 16 << 10
)

// Status is the state of a registration request, or the answer to a
// deregistration.
type Status string

// Statuses of a registration.
const (
	StatusPending Status = "pending"
	StatusGranted Status = "granted"
	StatusDenied  Status = "denied"
	// StatusRevoked answers a deregistration.
	StatusRevoked Status = "revoked"
)

// ErrBadRequest reports a registration request that is malformed, too large
// or has invalid fields.
var ErrBadRequest = errors.New("wire: bad registration request")

// ErrBadName reports an upload name that is not a segment of the uploader.
var ErrBadName = errors.New("wire: bad segment name")

// Facts describe the registering host, as it reports them.
type Facts struct {
	Hostname  string   `json:"hostname"`
	MachineID string   `json:"machine_id"`
	DMIUUID   string   `json:"dmi_uuid,omitempty"`
	IPs       []string `json:"ips,omitempty"`
	OS        string   `json:"os,omitempty"`
	Kernel    string   `json:"kernel,omitempty"`
	Version   string   `json:"version,omitempty"`
}

// Request is what a host sends to register, or to ask again about an earlier
// request with the same RequestID.
type Request struct {
	Version   int    `json:"version"`
	RequestID string `json:"request_id"` // 32 lowercase hex digits, chosen by the client
	Facts     Facts  `json:"facts"`
	// SSHKey is the authorized_keys line of the upload key (ssh-ed25519).
	SSHKey string `json:"ssh_key"`
	// SigningKey is the raw 32-byte Ed25519 key that signs segments.
	SigningKey []byte `json:"signing_key"`
	// Proof is the SSH wire signature, by the upload key, of ProofData for
	// this connection: it shows the client holds the key it registers.
	Proof   []byte `json:"proof"`
	Replace bool   `json:"replace,omitempty"`
}

// Response answers a Request or a deregistration.
type Response struct {
	Status    Status `json:"status"`
	RequestID string `json:"request_id,omitempty"`
	HostID    string `json:"host_id,omitempty"`
	// User is the SSH user name for uploads once granted.
	User   string `json:"user,omitempty"`
	Reason string `json:"reason,omitempty"`
}

var (
	requestIDRE = regexp.MustCompile(`^[0-9a-f]{32}$`)
	machineIDRE = regexp.MustCompile(`^[0-9a-f]{32}$`)
	dmiUUIDRE   = regexp.MustCompile(`^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$`)
)

// ValidRequestID reports whether id can name a registration request (and so
// a file).
func ValidRequestID(id string) bool { return requestIDRE.MatchString(id) }

// ProofData is what the upload key signs to prove possession: a fixed label,
// the SSH session id of the registration connection and the request id.
func ProofData(sessionID []byte, requestID string) []byte {
	var b bytes.Buffer
	b.WriteString("pofr-register-v1\x00")
	b.Write(sessionID)
	b.WriteByte(0)
	b.WriteString(requestID)
	return b.Bytes()
}

// ParseRequest decodes and validates one request: a single JSON object of at
// most MaxRequestBytes, no unknown fields, every field within bounds, and an
// ed25519 upload key. It does not check Proof (that needs the session).
func ParseRequest(b []byte) (*Request, error) {
	if len(b) > MaxRequestBytes {
		return nil, fmt.Errorf("%w: %d bytes, limit %d", ErrBadRequest, len(b), MaxRequestBytes)
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	var r Request
	if err := dec.Decode(&r); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadRequest, err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, fmt.Errorf("%w: data after the request object", ErrBadRequest)
	}
	if err := r.Validate(); err != nil {
		return nil, err
	}
	return &r, nil
}

// Validate checks every field of r.
func (r *Request) Validate() error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: %s", ErrBadRequest, fmt.Sprintf(format, args...))
	}
	if r.Version != Version {
		return bad("version %d, want %d", r.Version, Version)
	}
	if !ValidRequestID(r.RequestID) {
		return bad("request_id must be 32 lowercase hex digits")
	}
	f := &r.Facts
	if !printable(f.Hostname, 1, 253) {
		return bad("hostname must be 1-253 printable characters")
	}
	if !machineIDRE.MatchString(f.MachineID) {
		return bad("machine_id must be 32 lowercase hex digits")
	}
	if f.DMIUUID != "" && !dmiUUIDRE.MatchString(f.DMIUUID) {
		return bad("dmi_uuid is not a UUID")
	}
	if len(f.IPs) > 64 {
		return bad("%d ips, limit 64", len(f.IPs))
	}
	for _, ip := range f.IPs {
		if _, err := netip.ParseAddr(ip); err != nil || len(ip) > 64 {
			return bad("ip %q is not an address", truncate(ip))
		}
	}
	if !printable(f.OS, 0, 256) || !printable(f.Kernel, 0, 256) || !printable(f.Version, 0, 128) {
		return bad("os, kernel and version must be short printable text")
	}
	if _, err := ParseUploadKey(r.SSHKey); err != nil {
		return bad("ssh_key: %v", err)
	}
	if len(r.SigningKey) != 32 {
		return bad("signing_key has %d bytes, want 32", len(r.SigningKey))
	}
	if len(r.Proof) == 0 || len(r.Proof) > 1024 {
		return bad("proof missing or too long")
	}
	return nil
}

// ParseUploadKey parses an authorized_keys line holding exactly one
// ssh-ed25519 key without options.
func ParseUploadKey(line string) (ssh.PublicKey, error) {
	if len(line) > 1024 || strings.ContainsAny(line, "\r\n") {
		return nil, errors.New("not a single short line")
	}
	k, _, opts, rest, err := ssh.ParseAuthorizedKey([]byte(line))
	if err != nil {
		return nil, err
	}
	if len(opts) != 0 || len(bytes.TrimSpace(rest)) != 0 {
		return nil, errors.New("options or extra keys")
	}
	if k.Type() != ssh.KeyAlgoED25519 {
		return nil, fmt.Errorf("key type %s, want %s", k.Type(), ssh.KeyAlgoED25519)
	}
	return k, nil
}

// VerifyProof checks r.Proof against the upload key for sessionID.
func (r *Request) VerifyProof(sessionID []byte) error {
	k, err := ParseUploadKey(r.SSHKey)
	if err != nil {
		return fmt.Errorf("%w: ssh_key: %v", ErrBadRequest, err)
	}
	sig := new(ssh.Signature)
	if err := ssh.Unmarshal(r.Proof, sig); err != nil {
		return fmt.Errorf("%w: proof: %v", ErrBadRequest, err)
	}
	if err := k.Verify(ProofData(sessionID, r.RequestID), sig); err != nil {
		return fmt.Errorf("%w: proof does not verify with ssh_key", ErrBadRequest)
	}
	return nil
}

// ParseResponse decodes a response of at most MaxResponseBytes.
func ParseResponse(b []byte) (*Response, error) {
	if len(b) > MaxResponseBytes {
		return nil, fmt.Errorf("response of %d bytes, limit %d", len(b), MaxResponseBytes)
	}
	var r Response
	if err := json.Unmarshal(b, &r); err != nil {
		return nil, fmt.Errorf("decode response: %w", err)
	}
	switch r.Status {
	case StatusPending, StatusGranted, StatusDenied, StatusRevoked:
	default:
		return nil, fmt.Errorf("response status %q", truncate(string(r.Status)))
	}
	if r.Status == StatusGranted && (!spool.ValidHostID(r.HostID) || !printable(r.User, 1, 64)) {
		return nil, errors.New("granted response without a valid host id and user")
	}
	return &r, nil
}

// Upload names: a segment is uploaded as PartPrefix+name+PartSuffix, then
// renamed to name.
const (
	PartPrefix = "."
	PartSuffix = ".part"
)

// ParseUploadName checks a path an uploader of hostID sent and returns the
// final segment name it stands for, and whether it is the temporary (.part)
// name. The path must be one element, optionally after a single leading
// "/" (the root of the uploader's inbox): no "..", no other directory, no
// NUL, and the segment must carry hostID.
func ParseUploadName(p, hostID string) (final string, part bool, err error) {
	name := strings.TrimPrefix(p, "/")
	if name == "" || len(name) > 255 || strings.ContainsAny(name, "/\\\x00") || !utf8.ValidString(name) {
		return "", false, fmt.Errorf("%w: %q", ErrBadName, truncate(p))
	}
	if inner, ok := strings.CutPrefix(name, PartPrefix); ok {
		inner, ok = strings.CutSuffix(inner, PartSuffix)
		if !ok {
			return "", false, fmt.Errorf("%w: %q", ErrBadName, truncate(p))
		}
		name, part = inner, true
	}
	owner, _, _, ok := spool.ParseName(name)
	if !ok {
		return "", false, fmt.Errorf("%w: %q is not <host>_<seq>_<digest>.pofr", ErrBadName, truncate(p))
	}
	if owner != hostID {
		return "", false, fmt.Errorf("%w: %q belongs to host %q, not %q", ErrBadName, truncate(p), owner, hostID)
	}
	return name, part, nil
}

// PartName returns the temporary upload name of segment name.
func PartName(name string) string { return PartPrefix + name + PartSuffix }

// Fingerprint returns the SHA256:… fingerprint of an authorized_keys line,
// or "" when it does not parse.
func Fingerprint(line string) string {
	k, _, _, _, err := ssh.ParseAuthorizedKey([]byte(line))
	if err != nil {
		return ""
	}
	return ssh.FingerprintSHA256(k)
}

// NewRequestID returns a fresh request id from 16 random bytes.
func NewRequestID(random io.Reader) (string, error) {
	var b [16]byte
	if _, err := io.ReadFull(random, b[:]); err != nil {
		return "", fmt.Errorf("new request id: %w", err)
	}
	return hex.EncodeToString(b[:]), nil
}

// EncodeKey returns raw key bytes in base64, for messages.
func EncodeKey(b []byte) string { return base64.StdEncoding.EncodeToString(b) }

func printable(s string, min, max int) bool {
	if len(s) < min || len(s) > max || !utf8.ValidString(s) {
		return false
	}
	for _, r := range s {
		if r < 0x20 || r == 0x7f {
			return false
		}
	}
	return true
}

func truncate(s string) string {
	if len(s) > 80 {
		return s[:80] + "…"
	}
	return s
}

var nonID = regexp.MustCompile(`[^a-z0-9-]+`)

// IDBase returns the start of a host id derived from hostname: its first
// label, lower-cased, other characters turned into dashes, at most 40
// bytes; "" when nothing usable is left. A suffix makes it an id. It lives
// here, beside the host-id grammar, so that the collector names hosts the
// way the server does without linking the server's registry.
func IDBase(hostname string) string {
	base, _, _ := strings.Cut(strings.ToLower(hostname), ".")
	base = strings.Trim(nonID.ReplaceAllString(base, "-"), "-")
	if len(base) > 40 {
		base = strings.Trim(base[:40], "-")
	}
	return base
}
