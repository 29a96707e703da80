// Command pofr-server is pofr's collection server: it receives signed
// segments from registered hosts over SSH, verifies them and loads them into
// MariaDB, and answers analysts' questions.
//
// See 'pofr-server --help' and the README for the commands.
package main

import "github.com/pofr/pofr/internal/cli"

const prog = "pofr-server"

func main() {
	cli.Main(prog, "pofr-server receives pofr segments over SSH, loads them into MariaDB and queries them.")
}
