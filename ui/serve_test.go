package ui

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"io"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pofr/pofr/internal/testutil"
	"golang.org/x/crypto/bcrypt"
)

// certs writes a CA, a server certificate for 127.0.0.1 and a client
// certificate, both signed by the CA, as PEM files in dir.
func certs(t *testing.T, dir string) (caFile, certFile, keyFile string, client tls.Certificate, pool *x509.CertPool) {
	t.Helper()
	newKey := func() *ecdsa.PrivateKey {
		k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		return k
	}
	caKey := newKey()
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "pofr test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), IsCA: true,
		KeyUsage: x509.KeyUsageCertSign, BasicConstraintsValid: true}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(caDER)
	pool = x509.NewCertPool()
	pool.AddCert(ca)
	issue := func(serial int64, usage x509.ExtKeyUsage, ip bool) ([]byte, *ecdsa.PrivateKey) {
		k := newKey()
		tmpl := &x509.Certificate{SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: "pofr test"},
			NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), ExtKeyUsage: []x509.ExtKeyUsage{usage},
			KeyUsage: x509.KeyUsageDigitalSignature}
		if ip {
			tmpl.IPAddresses = []net.IP{net.ParseIP("127.0.0.1")}
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &k.PublicKey, caKey)
		if err != nil {
			t.Fatal(err)
		}
		return der, k
	}
	write := func(name, typ string, der []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	caFile = write("ca.pem", "CERTIFICATE", caDER)
	srvDER, srvKey := issue(2, x509.ExtKeyUsageServerAuth, true)
	certFile = write("server.pem", "CERTIFICATE", srvDER)
	kb, _ := x509.MarshalECPrivateKey(srvKey)
	keyFile = write("server.key", "EC PRIVATE KEY", kb)
	cliDER, cliKey := issue(3, x509.ExtKeyUsageClientAuth, false)
	client = tls.Certificate{Certificate: [][]byte{cliDER}, PrivateKey: cliKey}
	return caFile, certFile, keyFile, client, pool
}

// TestServeTLSAuth runs the UI with TLS client certificates and passwords:
// a client without a certificate is refused at the handshake, one without
// the password gets 401, one with both the page.
func TestServeTLSAuth(t *testing.T) {
	f := newFixture(t)
	dir := t.TempDir()
	caFile, certFile, keyFile, client, pool := certs(t, dir)
	hash, err := bcrypt.GenerateFromPassword([]byte("analyst-pw"), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	authFile := filepath.Join(dir, "auth")
	if err := os.WriteFile(authFile, []byte("ana:"+string(hash)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	base := startUI(t, f, Config{TLSCert: certFile, TLSKey: keyFile, ClientCA: caFile, AuthFile: authFile})
	if !strings.HasPrefix(base, "https://127.0.0.1:") {
		t.Fatalf("base URL %q", base)
	}
	do := func(cert bool, user, pass string) (int, error) {
		conf := &tls.Config{RootCAs: pool}
		if cert {
			conf.Certificates = []tls.Certificate{client}
		}
		c := &http.Client{Timeout: 20 * time.Second, Transport: &http.Transport{TLSClientConfig: conf}}
		req, _ := http.NewRequest("GET", base+"/", nil)
		if user != "" {
			req.SetBasicAuth(user, pass)
		}
		resp, err := c.Do(req)
		if err != nil {
			return 0, err
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp.StatusCode, nil
	}
	if code, err := do(false, "ana", "analyst-pw"); err == nil {
		t.Errorf("no client certificate: got HTTP %d, want a refused handshake", code)
	}
	if code, err := do(true, "", ""); err != nil || code != http.StatusUnauthorized {
		t.Errorf("certificate, no password: %d %v, want 401", code, err)
	}
	if code, err := do(true, "ana", "wrong"); err != nil || code != http.StatusUnauthorized {
		t.Errorf("certificate, wrong password: %d %v, want 401", code, err)
	}
	if code, err := do(true, "ana", "analyst-pw"); err != nil || code != http.StatusOK {
		t.Errorf("certificate and password: %d %v, want 200", code, err)
	}
}

// TestServeWarnsBeyondLoopback: listening on every address without
// authentication logs a warning; on loopback it does not.
func TestServeWarnsBeyondLoopback(t *testing.T) {
	f := newFixture(t)
	for _, c := range []struct {
		listen string
		warn   bool
	}{{"127.0.0.1:0", false}, {"0.0.0.0:0", true}} {
		var logs testutil.SyncBuffer
		ctx, cancel := context.WithCancel(context.Background())
		pr, pw := io.Pipe()
		done := make(chan error, 1)
		go func() {
			err := Run(ctx, Config{Listen: c.listen, DSN: f.readerDSN}, slog.New(slog.NewTextHandler(&logs, nil)), pw)
			pw.Close()
			done <- err
		}()
		line := make([]byte, 256)
		if _, err := pr.Read(line); err != nil {
			t.Fatalf("%s: ui did not start: %v", c.listen, err)
		}
		cancel()
		go io.Copy(io.Discard, pr)
		if err := <-done; err != nil {
			t.Errorf("%s: %v", c.listen, err)
		}
		if got := strings.Contains(logs.String(), "WITHOUT authentication"); got != c.warn {
			t.Errorf("%s: warning logged %v, want %v; log:\n%s", c.listen, got, c.warn, logs.String())
		}
	}
}
