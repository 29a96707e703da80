// Command pofr-collector is pofr's client: it records what runs on this host,
// what it touches and whom it talks to, keeps the record in a signed spool and
// pushes it to the collection server over SSH.
//
// Run it as root. See 'pofr-collector --help' and the README for the commands.
package main

import "github.com/pofr/pofr/internal/cli"

const prog = "pofr-collector"

func main() { newApp().Main() }

// newApp builds pofr-collector's command tree: every command is listed here.
func newApp() *cli.App {
	cmds := []*cli.Command{
		runCommand(),
		statusCommand(),
		registerCommand(),
		deregisterCommand(),
		spoolLsCommand(),
		spoolVerifyCommand(),
		spoolCatCommand(),
	}
	cmds = append(cmds, opensshCommands()...)
	return &cli.App{
		Prog: prog,
		About: "pofr-collector records processes, file access and network endpoints on this host\n" +
			"and ships them, signed, to a pofr server.",
		Commands: cmds,
	}
}
