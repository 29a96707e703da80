package wire

import (
	"crypto/rand"
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"golang.org/x/crypto/ssh"

	"github.com/pofr/pofr/internal/testutil"
)

func validRequest(t testing.TB, session []byte) *Request {
	t.Helper()
	signer := testutil.NewSigner(t)
	line := strings.TrimSpace(string(ssh.MarshalAuthorizedKey(signer.PublicKey())))
	r := &Request{
		Version:   Version,
		RequestID: "0123456789abcdef0123456789abcdef",
		Facts: Facts{
			Hostname: "web-01.example.org", MachineID: "fedcba9876543210fedcba9876543210",
			DMIUUID: "4C4C4544-004A-5210-8057-C4C04F563432", IPs: []string{"192.0.2.1", "2001:db8::1"},
			OS: "Debian GNU/Linux 12 (bookworm)", Kernel: "6.18.0", Version: "dev",
		},
		SSHKey:     line,
		SigningKey: make([]byte, 32),
	}
	sig, err := signer.Sign(rand.Reader, ProofData(session, r.RequestID))
	if err != nil {
		t.Fatal(err)
	}
	r.Proof = ssh.Marshal(sig)
	return r
}

func TestParseRequest(t *testing.T) {
	session := []byte("session-id")
	good := validRequest(t, session)
	b, _ := json.Marshal(good)
	r, err := ParseRequest(b)
	if err != nil {
		t.Fatalf("ParseRequest(valid): %v", err)
	}
	if err := r.VerifyProof(session); err != nil {
		t.Errorf("VerifyProof(same session): %v", err)
	}
	if err := r.VerifyProof([]byte("other session")); err == nil {
		t.Error("VerifyProof(other session) = nil, want an error")
	}

	mutate := func(f func(m map[string]any)) []byte {
		var m map[string]any
		json.Unmarshal(b, &m)
		f(m)
		out, _ := json.Marshal(m)
		return out
	}
	facts := func(m map[string]any) map[string]any { return m["facts"].(map[string]any) }
	bad := map[string][]byte{
		"empty":           nil,
		"not json":        []byte("hello"),
		"array":           []byte("[]"),
		"trailing":        append(append([]byte{}, b...), []byte(" {}")...),
		"huge":            []byte(`{"version":1,"facts":{"hostname":"` + strings.Repeat("a", MaxRequestBytes) + `"}}`),
		"unknown field":   mutate(func(m map[string]any) { m["shell"] = "/bin/sh" }),
		"version":         mutate(func(m map[string]any) { m["version"] = 2 }),
		"request id":      mutate(func(m map[string]any) { m["request_id"] = "../../etc/passwd" }),
		"hostname ctrl":   mutate(func(m map[string]any) { facts(m)["hostname"] = "a\nb" }),
		"machine id":      mutate(func(m map[string]any) { facts(m)["machine_id"] = "x" }),
		"dmi":             mutate(func(m map[string]any) { facts(m)["dmi_uuid"] = "'; DROP TABLE hosts; --" }),
		"ip":              mutate(func(m map[string]any) { facts(m)["ips"] = []string{"999.1.1.1"} }),
		"rsa key":         mutate(func(m map[string]any) { m["ssh_key"] = "ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAAAgQC" }),
		"key with option": mutate(func(m map[string]any) { m["ssh_key"] = `command="/bin/sh" ` + good.SSHKey }),
		"signing key":     mutate(func(m map[string]any) { m["signing_key"] = "AAAA" }),
		"no proof":        mutate(func(m map[string]any) { delete(m, "proof") }),
	}
	for name, in := range bad {
		if _, err := ParseRequest(in); !errors.Is(err, ErrBadRequest) {
			t.Errorf("ParseRequest(%s) error = %v, want ErrBadRequest", name, err)
		}
	}
}

func TestParseUploadName(t *testing.T) {
	const host = "web-01-3fa9c2"
	seg := host + "_00000000000000000042_0123456789abcdef.pofr"
	for _, tc := range []struct {
		in    string
		final string
		part  bool
	}{
		{seg, seg, false},
		{"/" + seg, seg, false},
		{"." + seg + ".part", seg, true},
		{"/." + seg + ".part", seg, true},
	} {
		final, part, err := ParseUploadName(tc.in, host)
		if err != nil || final != tc.final || part != tc.part {
			t.Errorf("ParseUploadName(%q) = %q, %v, %v; want %q, %v, nil", tc.in, final, part, err, tc.final, tc.part)
		}
	}
	for _, in := range []string{
		"", "/", ".", "..", "../" + seg, "/../" + seg, "a/" + seg, "//" + seg, seg + "/",
		"other-host_00000000000000000042_0123456789abcdef.pofr",
		host + "_42_0123456789abcdef.pofr",
		host + "_00000000000000000042_0123456789ABCDEF.pofr",
		host + "_00000000000000000042_0123456789abcdef.pofr.part",
		"." + seg, seg + ".part", ".." + seg + ".part",
		host + "_00000000000000000042_0123456789abcdef.pofr\x00",
		"/etc/passwd",
	} {
		if _, _, err := ParseUploadName(in, host); !errors.Is(err, ErrBadName) {
			t.Errorf("ParseUploadName(%q) error = %v, want ErrBadName", in, err)
		}
	}
}

func FuzzParseRequest(f *testing.F) {
	b, _ := json.Marshal(validRequest(f, []byte("s")))
	f.Add(b)
	f.Add([]byte(`{"version":1}`))
	f.Add([]byte(`{"version":1,"facts":{"ips":["::1"]},"signing_key":"AAAA"}`))
	f.Fuzz(func(t *testing.T, in []byte) {
		r, err := ParseRequest(in)
		if err != nil {
			if !errors.Is(err, ErrBadRequest) {
				t.Fatalf("error %v does not wrap ErrBadRequest", err)
			}
			return
		}
		// Whatever passes must be safe to use as a file name and a key.
		if !ValidRequestID(r.RequestID) || strings.ContainsAny(r.RequestID, "/.") {
			t.Fatalf("accepted request id %q", r.RequestID)
		}
		if _, err := ParseUploadKey(r.SSHKey); err != nil {
			t.Fatalf("accepted ssh key %q: %v", r.SSHKey, err)
		}
		r.VerifyProof([]byte("s")) // must not panic
	})
}

func FuzzUploadName(f *testing.F) {
	const host = "h-0011aabb"
	f.Add("/" + host + "_00000000000000000001_0123456789abcdef.pofr")
	f.Add("/." + host + "_00000000000000000001_0123456789abcdef.pofr.part")
	f.Add("/../x/" + host + "_00000000000000000001_0123456789abcdef.pofr")
	f.Add("..")
	f.Fuzz(func(t *testing.T, p string) {
		final, part, err := ParseUploadName(p, host)
		if err != nil {
			return
		}
		if strings.ContainsAny(final, "/\\\x00") || final == "." || final == ".." || strings.HasPrefix(final, ".") {
			t.Fatalf("ParseUploadName(%q) = %q: not a plain file name", p, final)
		}
		if !strings.HasPrefix(final, host+"_") || !strings.HasSuffix(final, ".pofr") {
			t.Fatalf("ParseUploadName(%q) = %q: not a segment of %s", p, final, host)
		}
		want := final
		if part {
			want = PartName(final)
		}
		if strings.TrimPrefix(p, "/") != want {
			t.Fatalf("ParseUploadName(%q) = %q, %v: does not name the path it was given", p, final, part)
		}
		// Round trip.
		f2, p2, err := ParseUploadName(want, host)
		if err != nil || f2 != final || p2 != part {
			t.Fatalf("round trip of %q: %q, %v, %v", want, f2, p2, err)
		}
	})
}
