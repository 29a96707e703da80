package uplink

import (
	"bufio"
	"bytes"
	"net"
	"os"
	"strings"

	"github.com/pofr/pofr/wire"
)

// HostFacts describe this host to the server at registration.
type HostFacts = wire.Facts

// Version is the pofr version reported in HostFacts; the build may set it
// with -ldflags "-X github.com/pofr/pofr/uplink.Version=…".
var Version = "dev"

// GatherFacts collects the hostname, /etc/machine-id, the DMI product uuid
// when readable, the addresses of the interfaces that are up (loopback and
// link-local left out), PRETTY_NAME of /etc/os-release, the kernel release
// and the pofr version. Missing facts stay empty; the server refuses a
// request without a machine id.
func GatherFacts() HostFacts {
	var f HostFacts
	f.Hostname, _ = os.Hostname()
	f.MachineID = readTrim("/etc/machine-id")
	if f.MachineID == "" {
		f.MachineID = readTrim("/var/lib/dbus/machine-id")
	}
	if u := strings.ToLower(readTrim("/sys/class/dmi/id/product_uuid")); u != "" {
		f.DMIUUID = u
	}
	f.OS = osPrettyName(readTrim("/etc/os-release"))
	f.Kernel = readTrim("/proc/sys/kernel/osrelease")
	f.Version = Version
	f.IPs = hostIPs()
	return f
}

func readTrim(path string) string {
	b, err := os.ReadFile(path)
	if err != nil || len(b) > 4096 {
		return ""
	}
	return string(bytes.TrimSpace(b))
}

// osPrettyName returns PRETTY_NAME from the text of an os-release file.
func osPrettyName(text string) string {
	sc := bufio.NewScanner(strings.NewReader(text))
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "PRETTY_NAME="); ok {
			return strings.Trim(v, `"'`)
		}
	}
	return ""
}

func hostIPs() []string {
	ifs, err := net.Interfaces()
	if err != nil {
		return nil
	}
	var out []string
	for _, ifc := range ifs {
		if ifc.Flags&net.FlagUp == 0 || ifc.Flags&net.FlagLoopback != 0 {
			continue
		}
		addrs, _ := ifc.Addrs()
		for _, a := range addrs {
			n, ok := a.(*net.IPNet)
			if !ok || n.IP.IsLinkLocalUnicast() || n.IP.IsLoopback() {
				continue
			}
			if len(out) < 64 {
				out = append(out, n.IP.String())
			}
		}
	}
	return out
}
