#!/bin/bash
# collector-ab.sh ROUNDS SECONDS RATE BIN... — collector builds side by side.
#
# For each round and each collector binary in turn (interleaved): start
# `BIN run --standalone --profile default` in a fresh temporary state, let it
# settle 4 s, run `pofr-load exec -rate RATE -duration SECONDSs` (RATE 0: as
# fast as possible), and print the storm's rate, the collector's CPU per exec
# (utime+stime of /proc/PID/stat over the storm), the storm children's own
# CPU per exec (wait4 rusage), peak RSS, voluntary and involuntary context
# switches per exec (all threads' /proc/PID/task/*/status) and, with perf on
# PATH, the collector's syscalls per exec (perf stat -e raw_syscalls:sys_enter
# over the storm). BIN "none" runs the storm with no
# collector (the baseline of the children's CPU). Before the settle the
# storm's own programs (pofr-load, /bin/true, perf) are run once, so that a
# fresh collector hashes them then and not during the storm (its exe hash
# cache starts empty; docs/design.md "What exe hashing costs an exec storm").
# Needs root; POFR_LOAD is a built bench/cmd/pofr-load (default: built into a
# temporary directory).
set -eu
R=$1; DUR=$2; RATE=$3; shift 3
. "$(dirname "$0")/ab-common.sh"
for r in $(seq "$R"); do
	for b in "$@"; do
		d=$(mktemp -d "$tmp/run.XXXX"); mkdir -p "$d/cfg" "$d/spool"
		if [ "$b" = none ]; then
			"$LOAD" exec -rate "$RATE" -duration "${DUR}s" >"$d/storm.json"
			python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); n=d["spawned"]; print("%-24s round %s  exec/s %6.0f  children µs/exec %6.1f" % ("none", sys.argv[2], d["rate"], d["child_cpu_ns"]/n/1e3))' "$d/storm.json" "$r"
			rm -rf "$d"; continue
		fi
		"$b" run --standalone --config-dir "$d/cfg" --spool-dir "$d/spool" --profile default >"$d/log" 2>&1 &
		P=$!
		for i in $(seq 50); do grep -q 'process source recording' "$d/log" && break; sleep 0.1; done
		"$LOAD" exec -rate 20 -duration 0.2s >/dev/null
		if command -v perf >/dev/null; then perf --version >/dev/null; fi
		sleep 3.5
		S=
		if command -v perf >/dev/null; then
			perf stat -e raw_syscalls:sys_enter -x, -o "$d/perf" -p $P & S=$!
		fi
		s0=$(cpu $P); c0=$(cs $P)
		"$LOAD" exec -rate "$RATE" -duration "${DUR}s" >"$d/storm.json"
		sleep 0.3
		s1=$(cpu $P); c1=$(cs $P); hwm=$(awk '/VmHWM/{print $2}' "/proc/$P/status")
		sc=-1
		if [ -n "$S" ]; then
			kill -INT $S; wait $S 2>/dev/null || true
			sc=$(awk -F, '/raw_syscalls/{print $1}' "$d/perf")
		fi
		kill $P; wait $P 2>/dev/null || true
		python3 - "$d/storm.json" "$b" "$r" "$s0" "$s1" "$c0" "$c1" "$hwm" "$(getconf CLK_TCK)" "${sc:--1}" <<'PY'
import json, sys
f, b, r, s0, s1, c0, c1, hwm, hz, sc = sys.argv[1:]
d = json.load(open(f)); n = d["spawned"]
(v0, n0), (v1, n1) = [map(int, c.split(",")) for c in (c0, c1)]
print("%-24s round %s  exec/s %6.0f  collector µs/exec %6.1f  children µs/exec %6.1f  peak RSS MB %5.1f  switches/exec %.2f voluntary %.2f involuntary%s" % (
    b.rsplit("/", 1)[-1], r, d["rate"], (int(s1) - int(s0)) * 1e6 / int(hz) / n, d["child_cpu_ns"] / n / 1e3,
    int(hwm) / 1024, (v1 - v0) / n, (n1 - n0) / n, "" if int(sc) < 0 else "  syscalls/exec %.2f" % (int(sc) / n)))
PY
		rm -rf "$d"
	done
done
