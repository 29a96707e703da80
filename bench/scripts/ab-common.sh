# ab-common.sh — what the A/B scripts (collector-ab.sh, conns-ab.sh) share;
# they source it after reading their arguments. It makes $tmp (removed on
# exit), sets $LOAD to a pofr-load binary (POFR_LOAD, or one built into $tmp)
# and defines cpu PID (utime+stime ticks of /proc/PID/stat) and cs PID
# (voluntary,involuntary context switches summed over PID's threads).
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
LOAD=${POFR_LOAD:-}
if [ -z "$LOAD" ]; then
	(cd "$(dirname "$0")/.." && go build -o "$tmp/pofr-load" ./cmd/pofr-load); LOAD=$tmp/pofr-load
fi
cpu() { awk '{print $14+$15}' "/proc/$1/stat"; }
cs() { cat /proc/"$1"/task/*/status 2>/dev/null | awk '/^voluntary_ctxt_switches/{v+=$2} /^nonvoluntary_ctxt_switches/{n+=$2} END{print v "," n}'; }
