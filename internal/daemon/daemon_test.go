package daemon

import (
	"context"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

func TestStartStop(t *testing.T) {
	sh, err := LookTool("sh")
	if err != nil {
		t.Skip(err)
	}
	logPath := filepath.Join(t.TempDir(), "out.log")
	p, err := Start("looper", exec.Command(sh, "-c", `echo ready; trap 'exit 0' TERM; while :; do sleep 0.01; done`), logPath)
	if err != nil {
		t.Fatal(err)
	}
	if m, err := p.WaitLog(context.Background(), regexp.MustCompile(`(?m)^(ready)$`), 5*time.Second); err != nil || m[1] != "ready" {
		t.Fatalf("WaitLog = %q, %v", m, err)
	}
	if !p.Running() || p.Name() != "looper" || p.LogPath() != logPath {
		t.Errorf("Running %v, Name %q, LogPath %q", p.Running(), p.Name(), p.LogPath())
	}
	if err := p.Stop(5 * time.Second); err != nil {
		t.Errorf("Stop of a program exiting 0 on SIGTERM: %v", err)
	}

	q, err := Start("failer", exec.Command(sh, "-c", `echo broken; exit 3`), logPath)
	if err != nil {
		t.Fatal(err)
	}
	<-q.Exited()
	if err := q.Stop(time.Second); err == nil || !strings.Contains(err.Error(), "broken") {
		t.Errorf("Stop after exit 3 = %v, want an error with the log's tail", err)
	}
	if _, err := q.WaitLog(context.Background(), regexp.MustCompile(`never`), 5*time.Second); err == nil {
		t.Error("WaitLog on an exited program succeeded")
	}
}

func TestLookTool(t *testing.T) {
	if _, err := LookTool("pofr-no-such-tool"); err == nil {
		t.Error("LookTool found a program that does not exist")
	}
}
