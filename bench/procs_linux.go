package bench

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"sync"
	"syscall"
	"time"
)

// RunProcs starts the processes described by cfg in this process and waits
// for all of them.
func RunProcs(ctx context.Context, cfg ProcsConfig) (ProcsResult, error) {
	if cfg.Rate <= 0 {
		return ProcsResult{}, fmt.Errorf("run processes: rate %v, want > 0", cfg.Rate)
	}
	attr, null, err := nullAttr()
	if err != nil {
		return ProcsResult{}, err
	}
	defer null.Close()

	plan := procsPlan(cfg)
	res := ProcsResult{Spawner: os.Getpid(), Procs: make([]ProcRecord, len(plan))}
	var wg sync.WaitGroup
	var firstErr error
	n := 0
	for i := range paced(ctx, len(plan), cfg.Rate) {
		rec := &res.Procs[i]
		rec.Marker = Marker(cfg.Tag, i)
		rec.Lifetime = plan[i]
		argv := []string{cfg.Path, rec.Marker, strconv.FormatInt(rec.Lifetime.Microseconds(), 10)}
		rec.Spawn = time.Now().UnixNano()
		pid, err := syscall.ForkExec(cfg.Path, argv, attr)
		if err != nil {
			firstErr = fmt.Errorf("fork/exec %s: %w", cfg.Path, err)
			break
		}
		rec.PID = int32(pid)
		wg.Go(func() {
			ws, err := wait(pid)
			rec.Reap = time.Now().UnixNano()
			rec.OK = err == nil && ws.Exited() && ws.ExitStatus() == 0
		})
		n++
	}
	res.Procs = res.Procs[:n]
	wg.Wait()
	if firstErr != nil {
		return res, firstErr
	}
	return res, ctx.Err()
}
