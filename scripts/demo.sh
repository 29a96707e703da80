#!/usr/bin/env bash
# pofr demo: the whole pipeline on this host, as root, in a temporary state
# directory. Called by `make demo` (after `make build` and building
# bin/demo-httpd).
#
#   scripts/demo.sh              install what is missing, run the demo, print the results
#   scripts/demo.sh query SUB …  run `pofr-server query SUB …` against the demo's database
#   scripts/demo.sh sql          open a mariadb shell on the demo's database
#   scripts/demo.sh ui [ADDR]    serve pofr-server ui on the demo's database (default 127.0.0.1:8080)
#   scripts/demo.sh clean        stop what a broken run left and remove the state (make demo-clean)
#
# It starts a private MariaDB (its own datadir and socket, no network), the
# pofr receiver on a loopback port, registers this host with a one-time token,
# records a short scripted workload with pofr-collector, pushes, loads and
# queries. Nothing is left running when it exits. The logs of every program
# are in files under the state directory ($POFR_DEMO_DIR, default /tmp/pofr-demo).
set -euo pipefail

D=${POFR_DEMO_DIR:-/tmp/pofr-demo}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BIN=${POFR_BIN:-$ROOT/bin}
SOCK=$D/db/mysqld.sock
PIDS=$D/pids # "pid name" of every background program, for clean after a crash
pids=()
DBPID=

if [[ -t 1 ]]; then
	bold() { printf '\033[1m%s\033[0m' "$*"; }
else
	bold() { printf '%s' "$*"; }
fi
say() { printf '\n%s\n' "$(bold "==> $*")"; }
note() { printf '    %s\n' "$*"; }
die() {
	printf 'demo: %s\n' "$*" >&2
	exit 1
}

# indent prints its input indented.
indent() { sed 's/^/    /'; }

# table prints a query's output indented, or "(none)" when it has no rows.
table() {
	local out
	out=$(cat)
	if [[ $(printf '%s\n' "$out" | wc -l) -le 1 ]]; then
		printf '    (none)\n'
	else
		printf '%s\n' "$out" | indent
	fi
}

# bg NAME LOG CMD…: start CMD in the background with its output in LOG.
bg() {
	local name=$1 log=$2
	shift 2
	"$@" >"$log" 2>&1 &
	pids+=($!)
	echo "$! $name" >>"$PIDS"
}

# wait_for FILE REGEX SECONDS: wait until FILE has a line matching REGEX.
wait_for() {
	local i
	for ((i = 0; i < $3 * 10; i++)); do
		grep -qE "$2" "$1" 2>/dev/null && return 0
		sleep 0.1
	done
	return 1
}

# cleanup stops what the script started, last started first (the collector
# before the receiver, so that it can push what it sealed), then MariaDB.
cleanup() {
	local rc=$? i
	if ((rc != 0 && ${#pids[@]})); then
		printf '\ndemo: stopping what it started\n' >&2
	fi
	for ((i = ${#pids[@]} - 1; i >= 0; i--)); do
		kill "${pids[i]}" 2>/dev/null || true
		wait "${pids[i]}" 2>/dev/null || true
	done
	pids=()
	stop_db
	rm -f "$PIDS"
}

# stop_leftovers stops the programs a run that could not clean up (kill -9,
# power cut) recorded in $PIDS, if they still are those programs.
stop_leftovers() {
	local pid name
	[[ -f $PIDS ]] && while read -r pid name; do
		if grep -qa "$D" "/proc/$pid/cmdline" 2>/dev/null; then
			echo "stopping $name (pid $pid) left by an earlier run"
			kill "$pid" 2>/dev/null || true
		fi
	done <"$PIDS"
	rm -f "$PIDS"
	if [[ -S $SOCK ]] && mariadb-admin --socket="$SOCK" ping >/dev/null 2>&1; then
		echo "stopping the MariaDB server left by an earlier run"
		mariadb-admin --socket="$SOCK" shutdown >/dev/null 2>&1 || true
	fi
}

start_db() {
	if [[ -S $SOCK ]] && mariadb-admin --socket="$SOCK" ping >/dev/null 2>&1; then
		return 0 # already running: another demo.sh started it and will stop it
	fi
	if [[ ! -d $D/db/data ]]; then
		mkdir -p "$D/db/tmp"
		chown mysql:mysql "$D/db" "$D/db/tmp"
		# A private tmpdir: at start mariadbd deletes every #sql* file in its
		# tmpdir, which in a shared /tmp are other servers' live temporary
		# tables. mariadb-install-db has been seen to fail its bootstrap on a
		# busy machine: try again from scratch.
		local try
		for try in 1 2 3; do
			rm -rf "$D/db/data"
			mariadb-install-db --no-defaults --datadir="$D/db/data" --tmpdir="$D/db/tmp" --user=mysql --skip-name-resolve \
				--auth-root-authentication-method=socket --skip-test-db >"$D/db/install.log" 2>&1 && break
			if ((try == 3)); then
				tail -n 30 "$D/db/install.log" >&2
				die "mariadb-install-db failed 3 times; see $D/db/install.log"
			fi
			echo "    mariadb-install-db failed (attempt $try); trying again" >&2
		done
	fi
	mkdir -p "$D/db/tmp" && chown mysql:mysql "$D/db/tmp"
	/usr/sbin/mariadbd --no-defaults --user=mysql --datadir="$D/db/data" --tmpdir="$D/db/tmp" --socket="$SOCK" \
		--pid-file="$D/db/mysqld.pid" --skip-networking --skip-name-resolve --local-infile=1 --character-set-server=utf8mb4 \
		--default-time-zone=+00:00 --innodb-buffer-pool-size=128M --skip-log-bin \
		--log-error="$D/db/error.log" >>"$D/db/stderr.log" 2>&1 &
	DBPID=$!
	local i
	for ((i = 0; i < 300; i++)); do
		mariadb-admin --socket="$SOCK" ping >/dev/null 2>&1 && return 0
		kill -0 "$DBPID" 2>/dev/null || {
			tail -n 20 "$D/db/error.log" >&2
			die "mariadbd did not start; see $D/db/error.log"
		}
		sleep 0.1
	done
	die "mariadbd not ready after 30 s; see $D/db/error.log"
}

# stop_db stops the demo's MariaDB if this script started it, or, when
# $DBPID is unknown (clean), whatever runs on the demo's socket.
stop_db() {
	if [[ -n $DBPID ]]; then
		mariadb-admin --socket="$SOCK" shutdown >/dev/null 2>&1 || kill "$DBPID" 2>/dev/null || true
		wait "$DBPID" 2>/dev/null || true
		DBPID=
	fi
}

# q SUBCOMMAND ARGS…: pofr-server query SUBCOMMAND as the demo's reader account.
q() {
	local sub=${1:?}
	shift
	"$BIN/pofr-server" query "$sub" --dsn-file "$D/reader.dsn" "$@"
}

# sql STATEMENT: run STATEMENT on the demo's database as MariaDB's root (socket auth).
sql() { mariadb --socket="$SOCK" --table pofr -e "$1"; }

case ${1:-run} in
clean)
	stop_leftovers
	rm -rf "$D"
	echo "removed $D"
	exit 0
	;;
query)
	shift
	[[ -f $D/reader.dsn ]] || die "no demo database in $D: run make demo first"
	trap cleanup EXIT
	start_db
	q "$@"
	exit 0
	;;
ui)
	[[ -f $D/reader.dsn ]] || die "no demo database in $D: run make demo first"
	trap cleanup EXIT
	trap 'exit 0' INT TERM
	start_db
	listen=${2:-127.0.0.1:8080}
	say "pofr-server ui on the demo's database, as its reader account (Ctrl-C stops it)"
	note "open http://$listen/ in a browser (from another machine: ssh -L ${listen##*:}:$listen this-host)"
	"$BIN/pofr-server" ui --dsn-file "$D/reader.dsn" --listen "$listen" || true
	exit 0
	;;
sql)
	[[ -d $D/db/data ]] || die "no demo database in $D: run make demo first"
	trap cleanup EXIT
	start_db
	mariadb --socket="$SOCK" pofr
	exit 0
	;;
run) ;;
*) die "unknown command $1 (run, query, sql, ui, clean)" ;;
esac

t0=$SECONDS
[[ $EUID -eq 0 ]] || die "run as root: the collector needs cn_proc, fanotify and sock_diag (sudo make demo)"
[[ -x $BIN/pofr-collector && -x $BIN/pofr-server && -x $BIN/demo-httpd ]] ||
	die "binaries missing in $BIN: run make demo (it builds them)"

say "MariaDB"
if [[ ! -x /usr/sbin/mariadbd ]] || ! command -v mariadb-install-db >/dev/null || ! command -v mariadb >/dev/null; then
	command -v apt-get >/dev/null || die "MariaDB is not installed and there is no apt-get: install mariadb-server yourself"
	note "installing mariadb-server with apt-get (the system's MariaDB service is not started)"
	policy=/usr/sbin/policy-rc.d
	made_policy=
	if [[ ! -e $policy ]]; then
		# Keep the package from starting the system-wide service: the demo runs its own.
		printf '#!/bin/sh\nexit 101\n' >"$policy" && chmod 755 "$policy" && made_policy=1
		trap 'rm -f "$policy"' EXIT
	fi
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq >/dev/null
	apt-get install -y -qq --no-install-recommends mariadb-server mariadb-client >/tmp/pofr-demo-apt.log 2>&1 ||
		{
			tail -n 20 /tmp/pofr-demo-apt.log >&2
			die "apt-get install mariadb-server failed; the whole log is /tmp/pofr-demo-apt.log"
		}
	if [[ -n $made_policy ]]; then rm -f "$policy"; fi
	trap - EXIT
fi
note "$(/usr/sbin/mariadbd --version | sed 's/^.*Ver /version /')"

stop_leftovers
rm -rf "$D"
mkdir -p "$D"
chmod 755 "$D"
trap cleanup EXIT
trap 'exit 130' INT TERM HUP

start_db
mariadb --socket="$SOCK" -e 'CREATE DATABASE IF NOT EXISTS pofr'
echo "root@unix($SOCK)/pofr" >"$D/admin.dsn"
chmod 600 "$D/admin.dsn"
"$BIN/pofr-server" schema apply --dsn-file "$D/admin.dsn" >>"$D/setup.log" 2>&1 ||
	{
		cat "$D/setup.log" >&2
		die "schema apply failed"
	}
head -c 18 /dev/urandom | base64 | tr -d '/+' >"$D/loader.pw"
head -c 18 /dev/urandom | base64 | tr -d '/+' >"$D/reader.pw"
"$BIN/pofr-server" schema users --dsn-file "$D/admin.dsn" \
	--loader-password-file "$D/loader.pw" --reader-password-file "$D/reader.pw" >>"$D/setup.log" 2>&1 ||
	{
		cat "$D/setup.log" >&2
		die "schema users failed"
	}
echo "pofr_loader:$(cat "$D/loader.pw")@unix($SOCK)/pofr" >"$D/loader.dsn"
echo "pofr_reader:$(cat "$D/reader.pw")@unix($SOCK)/pofr" >"$D/reader.dsn"
chmod 600 "$D"/*.dsn "$D"/*.pw
note "private server on $SOCK (data in $D/db), database pofr"
note "schema applied; accounts pofr_loader (loads) and pofr_reader (queries) created"

say "pofr-server serve: the SSH receiver, on loopback"
bg pofr-server "$D/serve.log" "$BIN/pofr-server" serve --listen 127.0.0.1:0 --state-dir "$D/server"
wait_for "$D/serve.log" '^host key SHA256:' 10 || {
	cat "$D/serve.log" >&2
	die "the receiver did not start"
}
addr=$(sed -n 's/^pofr-server listening on //p' "$D/serve.log" | head -n1)
fp=$(sed -n 's/^host key //p' "$D/serve.log" | head -n1)
note "listening on $addr, host key $fp"

say "pofr-collector register: this host joins the server with a one-time token"
"$BIN/pofr-server" token create --state-dir "$D/server" --ttl 10m >"$D/token" 2>>"$D/setup.log"
"$BIN/pofr-collector" register --server "$addr" --server-fingerprint "$fp" \
	--token-file "$D/token" --config-dir "$D/client" 2>>"$D/setup.log" | indent
host=$(sed -n 's/^ *"host_id": *"\([^"]*\)".*/\1/p' "$D/client/server.json")
[[ -n $host ]] || die "no host id in $D/client/server.json"

say "pofr-collector run: record this host while a scripted job runs"
bg pofr-collector "$D/collector.log" "$BIN/pofr-collector" run --config-dir "$D/client" \
	--state-dir "$D/collector" --segment-age 2s
collector=${pids[-1]}
wait_for "$D/collector.log" 'process source recording|POLL MODE' 15 &&
	wait_for "$D/collector.log" 'sock source started|sock_diag unavailable|sockets are not recorded' 5 || {
	tail -n 20 "$D/collector.log" >&2
	die "the collector did not start; see $D/collector.log"
}
note "recording (processes: cn_proc, files: fanotify, sockets: sock_diag); log in $D/collector.log"

bg demo-httpd "$D/httpd.log" "$BIN/demo-httpd" -port-file "$D/http.port" -for 90s -pace 2s
wait_for "$D/http.port" '^[0-9]+$' 5 || die "demo-httpd did not start; see $D/httpd.log"
hport=$(cat "$D/http.port")
work=$D/work
mkdir -p "$work"
cat >"$work/job.sh" <<EOF
#!/bin/bash
# The demo's job: a pipeline, a download over TCP, files written, renamed and deleted.
set -e
cd "$work"
grep -h -E '^(NAME|VERSION)=' /etc/os-release | sort | uniq -c >os.txt
exec 3<>/dev/tcp/127.0.0.1/$hport
printf 'GET /payload.bin HTTP/1.0\\r\\nHost: localhost\\r\\n\\r\\n' >&3
cat <&3 >payload.http
exec 3<&-
sha256sum payload.http >payload.sha256
mv payload.sha256 checksum.txt
rm -f payload.http
ls -l >listing.txt
EOF
chmod 755 "$work/job.sh"
note "job: $work/job.sh"
sed -n '3,$p' "$work/job.sh" | sed 's/^/        /'
"$work/job.sh" &
job=$!
sleep 1
during=$(date -u '+%Y-%m-%d %H:%M:%S') # mid-download, for the tree command below
wait "$job"
note "job done (pid $job); it left: $(cd "$work" && echo *)"

say "stop the collector: it seals the last segment and pushes it"
sleep 1 # let the socket dump and the file aggregation window see the end of the job
kill -TERM "$collector"
wait "$collector" || die "the collector failed; see $D/collector.log"
status=$("$BIN/pofr-collector" status --state-dir "$D/collector" 2>&1 || true)
note "$(printf '%s\n' "$status" | grep -E '^uplink:' | sed 's/  */ /g')"
note "$(printf '%s\n' "$status" | grep -E '^spool:')"
note "server inbox: $(ls "$D/server/inbox/$host" | wc -l) segments"

say "pofr-server load: verify each segment and load it into MariaDB, exactly once"
if ! "$BIN/pofr-server" load --state-dir "$D/server" --dsn-file "$D/loader.dsn" --no-progress 2>>"$D/load.log" | indent; then
	note "pofr-server load reported a problem (its log: $D/load.log); the custody section below shows what"
fi

say "what the job ran: pofr-server query proc --host $host $job"
# The rows above 'parent' are the job's ancestors up to pid 1: left out here.
q proc --host "$host" "$job" | grep -v '^ancestor' | table

say "whom it talked to: pofr-server query conns --all --port $hport"
q conns --all --port "$hport" | table

say "what it touched: pofr-server query touched $work/"
q touched "$work/" | table

say "custody: pofr-server query hosts"
q hosts | table
say "the segments ledger (SELECT … FROM segments)"
sql "SELECT seq, LEFT(HEX(digest), 12) AS digest, LEFT(HEX(prev_digest), 12) AS prev_digest, chain_ok,
	rows_proc AS proc, rows_file AS file, rows_sock AS sock, rows_gap AS gap, file_bytes AS bytes
	FROM segments WHERE host_id = '$host' ORDER BY seq" | table
say "gaps in the record: pofr-server query gaps --host $host"
q gaps --host "$host" | table

cleanup
trap - EXIT

cat <<EOF

$(bold "Done in $((SECONDS - t0)) s.") Nothing is left running; the state and every log are in $D.

$(bold "Explore further") (each command starts the demo's MariaDB and stops it after):
EOF
ex() { printf '  %-70s # %s\n' "$1" "$2"; }
ex "scripts/demo.sh ui" "the web interface: fleet, process tree, timeline, search"
ex "scripts/demo.sh query timeline --host $host --since 1h" "everything recorded, in time order"
ex "scripts/demo.sh query proc --host $host $job --json" "the job, exact bytes as JSON lines"
ex "scripts/demo.sh query tree --host $host --at '$during'" "the host's process tree mid-job"
ex "scripts/demo.sh query ran --exe sha256sum" "who ran a program, fleet-wide"
ex "scripts/demo.sh query conns --listening" "listeners and their owners"
ex "scripts/demo.sh sql" "plain SQL: SELECT * FROM processes LIMIT 10;"
ex "${BIN#"$ROOT"/}/pofr-server --help" "every command; COMMAND --help for its flags"
ex "make demo-clean" "remove $D"

# Offer the web interface on the demo's data when someone is at the terminal.
if [[ -t 0 && -t 1 ]]; then
	printf '\n%s ' "$(bold "Browse the record in the web interface now (scripts/demo.sh ui)? [y/N]")"
	read -r answer || answer=
	if [[ $answer == [yY]* ]]; then
		exec "$0" ui
	fi
fi
