#!/bin/bash
# conns-ab.sh ROUNDS PER RATE BIN... — collector builds side by side on connections.
#
# The procedure of `make bench`'s Conn/collector row, one binary after the
# other in each round (interleaved): start `BIN run --standalone --profile
# default` in a fresh temporary state, let it settle 4 s, run one warm-up
# `pofr-load conns -per 1` (the load binary's exec and hash are not a cost
# per connection) and wait 1 s, take the collector's CPU over a background
# window as long as the storm, then run `pofr-load conns -lifetimes 1ms -per
# PER -rate RATE` (4 kinds: 4×PER connections), wait 1 s, SIGTERM and wait
# for the exit (the seal). Printed per connection: gross CPU from the
# storm's start to the exit (wait4 rusage, as the bench), net of the
# background rate, the part of it spent in the stop (seal), syscalls (perf
# stat -e raw_syscalls:sys_enter) and voluntary / involuntary context
# switches (all threads' /proc/PID/task/*/status) over the storm and drain,
# each gross and net of the background window's rate. Extra collector flags
# go in POFR_FLAGS. Needs root and perf; POFR_LOAD is a built
# bench/cmd/pofr-load (default: built into a temporary directory).
set -eu
R=$1; PER=$2; RATE=$3; shift 3
. "$(dirname "$0")/ab-common.sh"
now() { date +%s.%N; }
sys() { # sys PID SECONDS FILE: syscalls of PID over the next SECONDS, into FILE
	perf stat -e raw_syscalls:sys_enter -x, -o "$3" -p "$1" -- sleep "$2" 2>/dev/null || true
}
for r in $(seq "$R"); do
	for b in "$@"; do
		d=$(mktemp -d "$tmp/run.XXXX"); mkdir -p "$d/cfg" "$d/spool"
		# The collector runs under a wait4 wrapper, so that its whole
		# CPU including the stop is known, as in the bench.
		python3 -c 'import os, subprocess, sys
p = subprocess.Popen(sys.argv[2:])
open(sys.argv[1] + ".pid", "w").write(str(p.pid))
_, _, ru = os.wait4(p.pid, 0)
open(sys.argv[1], "w").write("%d" % round((ru.ru_utime + ru.ru_stime) * 1e9))' "$d/exit" \
			"$b" run --standalone --config-dir "$d/cfg" --spool-dir "$d/spool" --profile default ${POFR_FLAGS:-} >"$d/log" 2>&1 &
		W=$!
		sleep 4
		P=$(cat "$d/exit.pid")
		"$LOAD" conns -lifetimes 1ms -per 1 -rate 100 >/dev/null
		sleep 1
		# Background window: as long as the storm will take.
		win=$(python3 -c "print(4 * $PER / $RATE)")
		b0=$(cpu $P); bc0=$(cs $P); t0=$(now)
		sys $P "$win" "$d/bgsys"
		b1=$(cpu $P); bc1=$(cs $P); t1=$(now)
		perf stat -e raw_syscalls:sys_enter -x, -o "$d/sys" -p "$P" & S=$!
		s0=$(cpu $P); c0=$(cs $P); t2=$(now)
		"$LOAD" conns -lifetimes 1ms -per "$PER" -rate "$RATE" >"$d/storm.json"
		sleep 1
		s1=$(cpu $P); c1=$(cs $P); t3=$(now)
		kill -INT $S; wait $S 2>/dev/null || true
		kill $P; wait $W || true
		t4=$(now)
		python3 - "$d" "$b" "$r" "$b0" "$b1" "$bc0" "$bc1" "$t0" "$t1" "$s0" "$s1" "$c0" "$c1" "$t2" "$t3" "$t4" "$(getconf CLK_TCK)" <<'PY'
import json, sys
d, b, r, b0, b1, bc0, bc1, t0, t1, s0, s1, c0, c1, t2, t3, t4, hz = sys.argv[1:]
hz = int(hz)
t0, t1, t2, t3, t4 = map(float, (t0, t1, t2, t3, t4))
n = len(json.load(open(d + "/storm.json"))["conns"])
def ticks(a, b): return (int(b) - int(a)) * 1e9 / hz
def sc(f):
    for l in open(f):
        if "raw_syscalls" in l: return int(l.split(",")[0])
    return -1
(bv0, bn0), (bv1, bn1), (v0, n0), (v1, n1) = [map(int, c.split(",")) for c in (bc0, bc1, c0, c1)]
bw = t1 - t0
bg = ticks(b0, b1) / bw              # ns of CPU per s of background
exitns = int(open(d + "/exit").read())
# CPU from the storm's start to the exit: the exit total minus what was
# used before s0 (ticks, 10 ms granularity; s0 is read right at t2).
gross = exitns - int(s0) * 1e9 / hz
stop = exitns - int(s1) * 1e9 / hz
net = gross - bg * (t4 - t2)
bsc, ssc = sc(d + "/bgsys"), sc(d + "/sys")
w = t3 - t2
print("%-22s round %s  conns %5d  µs/conn gross %6.1f net %6.1f (stop %5.1f)  bg %4.1f%%core  "
      "syscalls/conn %5.2f net %5.2f  vol.switches/conn %5.2f net %5.2f  invol. %4.2f" % (
    b.rsplit("/", 1)[-1], r, n, gross / 1e3 / n, net / 1e3 / n, stop / 1e3 / n, bg / 1e7,
    ssc / n, (ssc - bsc / bw * w) / n, (v1 - v0) / n, ((v1 - v0) - (bv1 - bv0) / bw * w) / n, (n1 - n0) / n))
PY
		rm -rf "$d"
	done
done
