package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"net"
	"os"
	"strings"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/pofr/pofr/internal/cli"
	"github.com/pofr/pofr/spool"
	"github.com/pofr/pofr/uplink"
	"github.com/pofr/pofr/wire"
)

// opensshCommands are 'keys' and 'register-openssh'. Hosts that push to a
// stock OpenSSH sshd have no registration endpoint:
// 'keys' prints what the server's admin needs, 'register-openssh' writes the
// server.json that 'register' would have written (docs/transport.md).
func opensshCommands() []*cli.Command {
	var configDir string
	keys := &cli.Command{
		Name:    "keys",
		Summary: "create (if missing) and print this host's public keys",
		Usage:   "[--config-dir D]",
		Help: `Creates this host's ed25519 upload and signing keys (0600) in the
configuration directory if they are missing, and prints the public halves:

  upload_key: ssh-ed25519 AAAA… pofr upload key
  signing_key: ssh-ed25519 AAAA… pofr segment signing key

then, for sites whose hosts push to a stock OpenSSH sshd (docs/transport.md),
the authorized_keys line for the host's account and the command that
registers the host on the server, with a suggested host id.

Exit codes: 0 printed, 1 error.`,
		Flags: func(fs *flag.FlagSet) {
			fs.StringVar(&configDir, "config-dir", uplink.DefaultConfigDir, "configuration `dir`ectory")
		},
		NoArgs: true,
		Run: func(ctx context.Context, env *cli.Env, args []string) error {
			keys, err := uplink.EnsureKeys(configDir)
			if err != nil {
				return err
			}
			signing, err := signingKeyLine(keys)
			if err != nil {
				return err
			}
			facts := uplink.GatherFacts()
			upload := keys.SSHAuthorizedKey()
			fmt.Fprintf(env.Stdout, "upload_key: %s\nsigning_key: %s\n\n", upload, signing)
			fmt.Fprintf(env.Stdout, "For a stock OpenSSH sshd (docs/transport.md), the account's authorized_keys line:\n  restrict %s\n", upload)
			fmt.Fprintf(env.Stdout, "and on the server:\n  pofr-server registrations add --host-id %s --hostname %s",
				suggestHostID(facts.Hostname, facts.MachineID), shellQuote(facts.Hostname))
			if facts.MachineID != "" {
				fmt.Fprintf(env.Stdout, " --machine-id %s", shellQuote(facts.MachineID))
			}
			fmt.Fprintf(env.Stdout, " \\\n    --ssh-key %s \\\n    --signing-key %s \\\n    --inbox /srv/pofr-sftp/ACCOUNT/inbox\n",
				shellQuote(upload), shellQuote(signing))
			return nil
		},
	}

	var (
		server, hostKey, hostKeyFile, hostID, user, remoteDir string
		replace                                               bool
	)
	registerOpenSSH := &cli.Command{
		Name:    "register-openssh",
		Summary: "configure pushing to a stock OpenSSH sshd (no registration server)",
		Usage:   "--server HOST[:PORT] --host-key-file F --host-id ID --user U [--remote-dir DIR] [--config-dir D]",
		Help: `Writes server.json for a host that pushes to a stock OpenSSH sshd with a
chrooted internal-sftp account instead of 'pofr-server serve'
(docs/transport.md), creating the keys if missing. The server's admin adds
the host with 'pofr-server registrations add' (the line 'keys' prints),
using the same host id.

--host-key-file is the server's public host key (for example a copy of its
/etc/ssh/ssh_host_ed25519_key.pub): the collector accepts no other key from
the server. --remote-dir is the inbox as the account sees it ("/inbox" in the
chroot of docs/transport.md).

Exit codes: 0 written, 1 error (a server.json exists: give --replace), 2 usage.

Example:
  pofr-collector register-openssh --server collector.example.org:22 \
    --host-key-file /root/collector_host_ed25519_key.pub \
    --host-id web-01-3fa9c2 --user pofr-web01 --remote-dir /inbox`,
		Flags: func(fs *flag.FlagSet) {
			fs.StringVar(&server, "server", "", "sshd `HOST[:PORT]` (port 22 when omitted)")
			fs.StringVar(&hostKeyFile, "host-key-file", "", "`file` with the server's public host key (authorized_keys or .pub format)")
			fs.StringVar(&hostKey, "host-key", "", "the server's public host key as a `line`, instead of --host-key-file")
			fs.StringVar(&hostID, "host-id", "", "this host's `id`, as registered on the server")
			fs.StringVar(&user, "user", "", "the SSH `account` to push as")
			fs.StringVar(&remoteDir, "remote-dir", "", "the upload `dir`ectory as the account sees it (default: its start directory)")
			fs.StringVar(&configDir, "config-dir", uplink.DefaultConfigDir, "configuration `dir`ectory")
			fs.BoolVar(&replace, "replace", false, "overwrite an existing server.json")
		},
		NoArgs: true,
		Run: func(ctx context.Context, env *cli.Env, args []string) error {
			if server == "" || hostID == "" || user == "" || (hostKey == "") == (hostKeyFile == "") {
				return cli.Usagef("--server, --host-id, --user and one of --host-key-file or --host-key are required")
			}
			if !spool.ValidHostID(hostID) {
				return cli.Usagef("--host-id %q: lower-case letters, digits and dashes, at most 63", hostID)
			}
			if _, _, err := net.SplitHostPort(server); err != nil {
				server = net.JoinHostPort(server, "22")
			}
			if hostKeyFile != "" {
				b, err := os.ReadFile(hostKeyFile)
				if err != nil {
					return err
				}
				hostKey = string(b)
			}
			k, _, _, _, err := ssh.ParseAuthorizedKey([]byte(hostKey))
			if err != nil {
				return fmt.Errorf("server host key: %w", err)
			}
			if _, err := uplink.LoadConfig(configDir); err == nil && !replace {
				return cli.Exit(1, fmt.Errorf("%s/%s exists: this host is registered already (give --replace to overwrite)", configDir, uplink.ConfigFile))
			} else if err != nil && !errors.Is(err, uplink.ErrNotRegistered) && !replace {
				return err
			}
			keys, err := uplink.EnsureKeys(configDir)
			if err != nil {
				return err
			}
			cfg := &uplink.Config{Server: server, HostKey: strings.TrimSpace(string(ssh.MarshalAuthorizedKey(k))),
				HostID: hostID, User: user, RemoteDir: remoteDir, RegisteredAt: time.Now().UTC()}
			if err := uplink.SaveConfig(configDir, cfg); err != nil {
				return err
			}
			signing, err := signingKeyLine(keys)
			if err != nil {
				return err
			}
			fmt.Fprintf(env.Stdout, "wrote %s/%s: push to %s@%s (host key %s) as host %s\n", configDir, uplink.ConfigFile,
				user, server, ssh.FingerprintSHA256(k), hostID)
			fmt.Fprintf(env.Stdout, "upload_key: %s\nsigning_key: %s\n", keys.SSHAuthorizedKey(), signing)
			return nil
		},
	}
	return []*cli.Command{keys, registerOpenSSH}
}

// signingKeyLine returns the segment signing key's public half as an
// authorized_keys line.
func signingKeyLine(keys *uplink.Keys) (string, error) {
	pk, err := ssh.NewPublicKey(keys.Signing.Public())
	if err != nil {
		return "", fmt.Errorf("signing key: %w", err)
	}
	return strings.TrimSpace(string(ssh.MarshalAuthorizedKey(pk))) + " pofr segment signing key", nil
}

// suggestHostID derives a host id from the hostname's first label and the
// machine id, stable across runs: "web-01-3fa9c2".
func suggestHostID(hostname, machineID string) string {
	base := wire.IDBase(hostname)
	sum := sha256.Sum256([]byte(machineID + "\x00" + hostname))
	if base == "" {
		return "h-" + hex.EncodeToString(sum[:4])
	}
	return base + "-" + hex.EncodeToString(sum[:3])
}

// shellQuote quotes s for a POSIX shell.
func shellQuote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}
