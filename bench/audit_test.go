package bench

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestParseAuditStatus(t *testing.T) {
	out := `enabled 1
failure 1
pid 5123
rate_limit 0
backlog_limit 8192
lost 3
backlog 0
backlog_wait_time 60000
backlog_wait_time_actual 0
loginuid_immutable 0 unlocked
`
	got, err := ParseAuditStatus([]byte(out))
	if err != nil {
		t.Fatal(err)
	}
	want := AuditStatus{Enabled: 1, Failure: 1, PID: 5123, BacklogLimit: 8192, Lost: 3, BacklogWaitTime: 60000}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("ParseAuditStatus (-want +got):\n%s", diff)
	}
	if _, err := ParseAuditStatus([]byte("You must be root to run this program.\n")); err == nil {
		t.Error("ParseAuditStatus accepted an error message")
	}
}

func TestParseAuditRules(t *testing.T) {
	if r := ParseAuditRules([]byte("No rules\n")); len(r) != 0 {
		t.Errorf("ParseAuditRules(No rules) = %q, want none", r)
	}
	got := ParseAuditRules([]byte("-a always,exit -F arch=b64 -S execve\n-w /etc/passwd -p wa\n"))
	if want := []string{"-a always,exit -F arch=b64 -S execve", "-w /etc/passwd -p wa"}; !cmp.Equal(got, want) {
		t.Errorf("ParseAuditRules = %q, want %q", got, want)
	}
}

func TestCountAuditExecs(t *testing.T) {
	log := strings.Join([]string{
		// before the window
		`type=SYSCALL msg=audit(1000.000:1): arch=c000003e syscall=59 success=yes exit=0 ppid=77 pid=101 comm="true"`,
		// ours
		`type=SYSCALL msg=audit(1001.100:2): arch=c000003e syscall=59 success=yes exit=0 ppid=77 pid=102 comm="true"`,
		`type=EXECVE msg=audit(1001.100:2): argc=1 a0="/bin/true"`,
		`type=PROCTITLE msg=audit(1001.100:2): proctitle="/bin/true"`,
		// ours again: pid 102 was spawned twice
		`type=SYSCALL msg=audit(1001.200:3): arch=c000003e syscall=59 success=yes exit=0 ppid=77 pid=102 comm="true"`,
		// someone else's exec, and an execveat
		`type=SYSCALL msg=audit(1001.300:4): arch=c000003e syscall=59 success=yes exit=0 ppid=1 pid=103 comm="sh"`,
		`type=SYSCALL msg=audit(1001.400:5): arch=c000003e syscall=322 success=yes exit=0 ppid=77 pid=104 comm="x"`,
		// a failed exec (PATH search) is not an exec
		`type=SYSCALL msg=audit(1001.450:10): arch=c000003e syscall=59 success=no exit=-2 ppid=1 pid=103 comm="sh"`,
		// not an exec
		`type=SYSCALL msg=audit(1001.500:6): arch=c000003e syscall=2 success=yes exit=3 ppid=77 pid=102`,
		// a pid not in the set, a third 102 (spawned only twice)
		`type=SYSCALL msg=audit(1001.600:7): arch=c000003e syscall=59 success=yes exit=0 ppid=77 pid=999`,
		`type=SYSCALL msg=audit(1001.700:8): arch=c000003e syscall=59 success=yes exit=0 ppid=77 pid=102`,
		// after the window
		`type=SYSCALL msg=audit(1005.000:9): arch=c000003e syscall=59 success=yes exit=0 ppid=77 pid=105`,
		`garbage line`,
		`type=SYSCALL msg=audit(1001.8`, // truncated at the end of the log
	}, "\n")
	got, err := CountAuditExecs(strings.NewReader(log), 1001, 1002, 77, []int32{102, 102, 104, 105})
	if err != nil {
		t.Fatal(err)
	}
	if got.Execs != 6 || got.Matched != 3 || got.Records != 10 {
		t.Errorf("CountAuditExecs = %+v, want 6 execs, 3 matched, 10 records", got)
	}
	if got.Bytes <= 0 {
		t.Errorf("CountAuditExecs bytes = %d, want > 0", got.Bytes)
	}
}
