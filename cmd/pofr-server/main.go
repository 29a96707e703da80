// Command pofr-server is pofr's collection server: it receives signed
// segments from registered hosts over SSH, verifies them and loads them into
// MariaDB, and answers analysts' questions.
//
// See 'pofr-server --help' and the README for the commands.
package main

import (
	"flag"

	"github.com/pofr/pofr/internal/cli"
)

const prog = "pofr-server"

func main() { newApp().Main() }

// newApp builds pofr-server's command tree: every command is listed here.
func newApp() *cli.App {
	cmds := []*cli.Command{
		serveCommand(),
		loadCommand(),
		perShard(verifyCommand(), loaderDSN),
		perShard(retentionCommand(), adminDSN),
		perShardWhen(deregisterCommand(), adminDSN, func(fs *flag.FlagSet) bool { return fs.Lookup("purge-rows").Value.String() == "true" }),
		exportCommand(),
		tokenCommand(),
		uiCommand(),
		alertCommand(),
		headCommand(),
	}
	cmds = append(cmds, registrationsCommands()...)
	cmds = append(cmds, schemaCommands()...)
	cmds = append(cmds, shardsCommands()...)
	cmds = append(cmds, registryCommands()...)
	cmds = append(cmds, queryCommands()...)
	return &cli.App{
		Prog:     prog,
		About:    "pofr-server receives pofr segments over SSH, loads them into MariaDB and queries them.",
		Commands: cmds,
	}
}
