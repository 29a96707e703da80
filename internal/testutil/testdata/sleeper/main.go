// Command sleeper is the static program of the container image that
// testutil.WriteSleeperImage builds: it sleeps until killed.
package main

import "time"

func main() { time.Sleep(time.Hour) }
