// Command echoargs prints its arguments, one per line; testutil's tests build
// it with Bin.
package main

import (
	"fmt"
	"os"
)

func main() {
	for _, a := range os.Args[1:] {
		fmt.Println(a)
	}
}
