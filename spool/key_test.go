package spool

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/pem"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"golang.org/x/crypto/ssh"
)

func TestKeys(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "signing.key")
	key, err := GenerateKey(path)
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := fi.Mode().Perm(), os.FileMode(0o600); got != want {
		t.Errorf("key file mode %v, want %v", got, want)
	}
	loaded, err := LoadKey(path)
	if err != nil {
		t.Fatal(err)
	}
	if !loaded.Equal(key) {
		t.Error("LoadKey returned another key than GenerateKey")
	}
	if _, err := GenerateKey(path); !errors.Is(err, os.ErrExist) {
		t.Errorf("GenerateKey over an existing key: %v, want ErrExist", err)
	}
	if again, _ := LoadKey(path); !again.Equal(key) {
		t.Error("the existing key was replaced")
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 1 {
		t.Errorf("temporary files left: %v", ents)
	}

	pub := key.Public().(ed25519.PublicKey)
	if got, err := LoadPublicKey(path); err != nil || !got.Equal(pub) {
		t.Errorf("LoadPublicKey(private key) = %x, %v; want %x", got, err, pub)
	}
	line, err := PublicKeyLine(pub)
	if err != nil {
		t.Fatal(err)
	}
	pubPath := filepath.Join(dir, "signing.key.pub")
	os.WriteFile(pubPath, []byte(line), 0o644)
	if got, err := LoadPublicKey(pubPath); err != nil || !got.Equal(pub) {
		t.Errorf("LoadPublicKey(%q) = %x, %v; want %x", line, got, err, pub)
	}

	os.Chmod(path, 0o644)
	if _, err := LoadKey(path); err == nil {
		t.Error("LoadKey accepted a key readable by others")
	}
	os.WriteFile(pubPath, []byte("not a key\n"), 0o644)
	if _, err := LoadPublicKey(pubPath); err == nil {
		t.Error("LoadPublicKey accepted garbage")
	}
}

// TestLoadSSHKeygenKey reads a key made by OpenSSH's ssh-keygen, if present.
func TestLoadSSHKeygenKey(t *testing.T) {
	if _, err := exec.LookPath("ssh-keygen"); err != nil {
		t.Skip("ssh-keygen not installed")
	}
	path := filepath.Join(t.TempDir(), "k")
	if out, err := exec.Command("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", path).CombinedOutput(); err != nil {
		t.Fatalf("ssh-keygen: %v\n%s", err, out)
	}
	key, err := LoadKey(path)
	if err != nil {
		t.Fatal(err)
	}
	pub, err := LoadPublicKey(path + ".pub")
	if err != nil {
		t.Fatal(err)
	}
	if !pub.Equal(key.Public()) {
		t.Error("ssh-keygen's .pub does not match its private key as loaded")
	}
}

// TestParseKeyOtherType: a valid OpenSSH private key of another type is
// refused, naming its type.
func TestParseKeyOtherType(t *testing.T) {
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	block, err := ssh.MarshalPrivateKey(priv, "")
	if err != nil {
		t.Fatal(err)
	}
	const want = "*ecdsa.PrivateKey is not an Ed25519 key"
	if _, err := ParseKey(pem.EncodeToMemory(block)); err == nil || err.Error() != want {
		t.Errorf("ParseKey of an ECDSA key: %v, want %q", err, want)
	}
}
