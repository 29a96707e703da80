package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"golang.org/x/term"

	"github.com/pofr/pofr/internal/cli"
	"github.com/pofr/pofr/uplink"
)

// Exit codes of register.
const (
	exitRegisterPending = 3
	exitRegisterDenied  = 4
)

// registerCommand is 'register'.
func registerCommand() *cli.Command {
	var (
		server, fingerprint, tokenFile, passwordFile, configDir string
		replace                                                 bool
		wait                                                    time.Duration
	)
	return &cli.Command{
		Name:    "register",
		Summary: "register this host with a pofr server",
		Usage:   "--server HOST[:PORT] [--token-file F | --password-file F] [flags]",
		Help: `Creates this host's ed25519 upload and signing keys (0600) in the
configuration directory, connects to the server, shows the server's host key
fingerprint and asks you to confirm it (or checks --server-fingerprint), then
sends the host's facts and public keys authenticated with a one-time token
(pofr-server token create) or the registration password.

A token registers at once. With the password the request waits for an admin
(pofr-server registrations approve); run register again to ask again (the same
request is resumed), or pass --wait to keep asking. On grant the server's
address, pinned host key and the host id are written to server.json.

Secrets are read from files, or the password is prompted for on a terminal.

Exit codes: 0 granted, 3 pending, 4 denied (the reason is printed),
1 error, 2 usage.

Example:
  pofr-collector register --server collector.example.org:2222 --token-file /root/pofr.token`,
		Flags: func(fs *flag.FlagSet) {
			fs.StringVar(&server, "server", "", "server `HOST[:PORT]` (port 22 when omitted)")
			fs.StringVar(&fingerprint, "server-fingerprint", "", "expected server host key `SHA256:…` (no prompt)")
			fs.StringVar(&tokenFile, "token-file", "", "`file` holding a one-time registration token")
			fs.StringVar(&passwordFile, "password-file", "", "`file` holding the registration password")
			configDirFlag(fs, &configDir)
			fs.BoolVar(&replace, "replace", false, "replace an active registration of this machine (and a local server.json)")
			fs.DurationVar(&wait, "wait", 0, "keep asking while pending, up to `duration`")
		},
		NoArgs: true,
		Run: func(ctx context.Context, env *cli.Env, args []string) error {
			if server == "" {
				return cli.Usagef("--server is required")
			}
			if tokenFile != "" && passwordFile != "" {
				return cli.Usagef("--token-file and --password-file exclude each other")
			}
			if os.Geteuid() != 0 {
				env.Log.Warn("register is meant to run as root: the keys must be readable by the collector only")
			}
			opts := uplink.RegisterOptions{
				Server:      server,
				ConfigDir:   configDir,
				Fingerprint: fingerprint,
				Facts:       uplink.GatherFacts(),
				Replace:     replace,
				Wait:        wait,
				Log:         env.Log,
			}
			tty := transportIsTerminal(env.Stdin)
			var err error
			switch {
			case tokenFile != "":
				opts.Token, err = transportReadSecret(tokenFile)
			case passwordFile != "":
				opts.Password, err = transportReadSecret(passwordFile)
			case tty:
				fmt.Fprint(env.Stderr, "Registration password: ")
				opts.Password, err = term.ReadPassword(int(env.Stdin.(*os.File).Fd()))
				fmt.Fprintln(env.Stderr)
			default:
				return cli.Usagef("no terminal to ask for the password: give --token-file or --password-file")
			}
			if err != nil {
				return err
			}
			if fingerprint == "" {
				if !tty {
					return cli.Usagef("no terminal to confirm the server's host key: give --server-fingerprint")
				}
				in := bufio.NewReader(env.Stdin)
				opts.Confirm = func(fp string) bool {
					fmt.Fprintf(env.Stderr, "The server %s offers host key\n  %s\nCompare it with 'pofr-server serve' output on the server. Trust it? [y/N] ", server, fp)
					line, _ := in.ReadString('\n')
					a := strings.ToLower(strings.TrimSpace(line))
					return a == "y" || a == "yes"
				}
			}
			res, err := uplink.Register(ctx, opts)
			if err != nil {
				if errors.Is(err, uplink.ErrAlreadyRegistered) {
					return cli.Exit(1, err)
				}
				return err
			}
			switch res.Status {
			case uplink.StatusGranted:
				fmt.Fprintf(env.Stdout, "granted: host id %s (server key %s); configuration in %s\n", res.HostID, res.Fingerprint, configDir)
				return nil
			case uplink.StatusPending:
				fmt.Fprintf(env.Stdout, "pending: request %s waits for approval on the server\n"+
					"  (pofr-server registrations approve %s); run register again to ask again\n", res.RequestID, res.RequestID)
				return cli.Exit(exitRegisterPending, nil)
			default:
				fmt.Fprintf(env.Stdout, "denied: %s\n", res.Reason)
				return cli.Exit(exitRegisterDenied, nil)
			}
		},
	}
}

// transportReadSecret reads a secret from a file, without its trailing
// newline.
func transportReadSecret(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("read secret: %w", err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, 4096))
	if err != nil {
		return nil, fmt.Errorf("read secret %s: %w", path, err)
	}
	b = []byte(strings.TrimRight(string(b), "\r\n"))
	if len(b) == 0 {
		return nil, fmt.Errorf("read secret %s: empty", path)
	}
	return b, nil
}

// transportIsTerminal reports whether r is a terminal.
func transportIsTerminal(r io.Reader) bool {
	f, ok := r.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

// configDirFlag defines --config-dir, where the registration commands keep
// the keys and server.json.
func configDirFlag(fs *flag.FlagSet, dir *string) {
	fs.StringVar(dir, "config-dir", uplink.DefaultConfigDir, "configuration `dir`ectory")
}
