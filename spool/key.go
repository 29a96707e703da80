package spool

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"errors"
	"fmt"
	"os"

	"github.com/pofr/pofr/internal/durable"
	"golang.org/x/crypto/ssh"
)

// GenerateKey creates a new Ed25519 signing key and saves it at path in the
// OpenSSH private key format, mode 0600. It never overwrites: if path exists
// it fails with an error wrapping os.ErrExist. The file appears complete or
// not at all.
func GenerateKey(path string) (ed25519.PrivateKey, error) {
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("generate key %s: %w", path, err)
	}
	block, err := ssh.MarshalPrivateKey(priv, "pofr segment signing key")
	if err != nil {
		return nil, fmt.Errorf("generate key %s: %w", path, err)
	}
	if err := durable.CreateFile(path, pem.EncodeToMemory(block), 0o600); err != nil {
		return nil, fmt.Errorf("generate key: %w", err)
	}
	return priv, nil
}

// LoadKey reads an Ed25519 private key in the OpenSSH format (as written by
// GenerateKey or ssh-keygen -t ed25519 without a passphrase). On Unix it
// refuses a file that others than its owner may read.
func LoadKey(path string) (ed25519.PrivateKey, error) {
	data, err := durable.ReadPrivate(path, 64<<10)
	if err != nil {
		return nil, fmt.Errorf("load key %s: %w", path, err)
	}
	k, err := ParseKey(data)
	if err != nil {
		return nil, fmt.Errorf("load key %s: %w", path, err)
	}
	return k, nil
}

// ParseKey parses an Ed25519 private key in the OpenSSH format, as
// GenerateKey writes it (the collector's upload key too).
func ParseKey(data []byte) (ed25519.PrivateKey, error) {
	raw, err := ssh.ParseRawPrivateKey(data)
	if err != nil {
		return nil, err
	}
	switch k := raw.(type) {
	case ed25519.PrivateKey:
		return k, nil
	case *ed25519.PrivateKey:
		return *k, nil
	}
	return nil, fmt.Errorf("%T is not an Ed25519 key", raw)
}

// LoadPublicKey reads an Ed25519 public key from a file holding either an
// OpenSSH public key line ("ssh-ed25519 AAAA… comment", as in a .pub file)
// or an OpenSSH private key, whose public half is used.
func LoadPublicKey(path string) (ed25519.PublicKey, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("load public key %s: %w", path, err)
	}
	if pub, _, _, _, err := ssh.ParseAuthorizedKey(data); err == nil {
		cpk, ok := pub.(ssh.CryptoPublicKey)
		if !ok {
			return nil, fmt.Errorf("load public key %s: not an Ed25519 key", path)
		}
		k, ok := cpk.CryptoPublicKey().(ed25519.PublicKey)
		if !ok {
			return nil, fmt.Errorf("load public key %s: %s is not an Ed25519 key", path, pub.Type())
		}
		return k, nil
	}
	priv, err := LoadKey(path)
	if err != nil {
		return nil, errors.Join(fmt.Errorf("load public key %s: neither a public key line nor a private key", path), err)
	}
	return priv.Public().(ed25519.PublicKey), nil
}

// PublicKeyLine returns pub as an OpenSSH public key line
// ("ssh-ed25519 AAAA…"), the form LoadPublicKey reads.
func PublicKeyLine(pub ed25519.PublicKey) (string, error) {
	k, err := ssh.NewPublicKey(pub)
	if err != nil {
		return "", fmt.Errorf("public key line: %w", err)
	}
	return string(ssh.MarshalAuthorizedKey(k)), nil
}
