#!/usr/bin/env bash
# pofr demo: the whole pipeline on this host, as root, in a temporary state
# directory. Called by `make demo` (after `make build`).
#
#   scripts/demo.sh              install what is missing, run the demo, print the results
#   scripts/demo.sh query ARGS   run `pofr-server query ARGS` against the demo's database
#   scripts/demo.sh sql          open a mariadb shell on the demo's database
#   scripts/demo.sh clean        remove the demo's state (make demo-clean)
#
# It starts a private MariaDB (its own datadir and socket, no network), the
# pofr receiver on a loopback port, registers this host with a one-time token,
# records a short scripted workload with pofr-collector, pushes, loads and
# queries. Nothing is left running when it exits.
set -euo pipefail

D=${POFR_DEMO_DIR:-/tmp/pofr-demo}
BIN=${POFR_BIN:-$(cd "$(dirname "$0")/.." && pwd)/bin}
SOCK=$D/db/mysqld.sock
pids=()

say() { printf '\n\033[1m==> %s\033[0m\n' "$*"; }
die() { printf 'demo: %s\n' "$*" >&2; exit 1; }

cleanup() {
	local p
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
	for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
	stop_db
}

start_db() {
	[[ -S $SOCK ]] && mariadb-admin --socket="$SOCK" ping >/dev/null 2>&1 && return
	if [[ ! -d $D/db/data ]]; then
		mkdir -p "$D/db"
		chown mysql:mysql "$D/db"
		mariadb-install-db --no-defaults --datadir="$D/db/data" --user=mysql \
			--auth-root-authentication-method=normal --skip-test-db >"$D/db/install.log" 2>&1 ||
			{ cat "$D/db/install.log"; die "mariadb-install-db failed"; }
	fi
	/usr/sbin/mariadbd --no-defaults --user=mysql --datadir="$D/db/data" --socket="$SOCK" \
		--pid-file="$D/db/mysqld.pid" --skip-networking --local-infile=1 --character-set-server=utf8mb4 \
		--default-time-zone=+00:00 --innodb-buffer-pool-size=256M --skip-log-bin \
		--log-error="$D/db/error.log" &
	DBPID=$!
	for _ in $(seq 100); do
		mariadb-admin --socket="$SOCK" ping >/dev/null 2>&1 && return
		kill -0 "$DBPID" 2>/dev/null || { cat "$D/db/error.log"; die "mariadbd did not start"; }
		sleep 0.1
	done
	die "mariadbd not ready after 10 s; see $D/db/error.log"
}

stop_db() {
	if [[ -S $SOCK ]]; then
		mariadb-admin --socket="$SOCK" shutdown >/dev/null 2>&1 || true
	fi
	if [[ -n ${DBPID:-} ]]; then wait "$DBPID" 2>/dev/null || true; fi
}

q() { "$BIN/pofr-server" query --dsn-file "$D/reader.dsn" "$@"; }

case ${1:-run} in
clean)
	stop_db
	rm -rf "$D"
	echo "removed $D"
	exit 0
	;;
query)
	shift
	trap cleanup EXIT
	start_db
	q "$@"
	exit 0
	;;
sql)
	trap cleanup EXIT
	start_db
	mariadb --socket="$SOCK" pofr
	exit 0
	;;
run) ;;
*) die "unknown command $1 (run, query, sql, clean)" ;;
esac

[[ $EUID -eq 0 ]] || die "run as root: the collector needs cn_proc, fanotify and sock_diag (sudo make demo)"
[[ -x $BIN/pofr-collector && -x $BIN/pofr-server ]] || die "binaries missing in $BIN: run make build"

say "install what is missing (MariaDB)"
if ! command -v mariadbd >/dev/null && [[ ! -x /usr/sbin/mariadbd ]]; then
	policy=/usr/sbin/policy-rc.d
	if [[ ! -e $policy ]]; then printf '#!/bin/sh\nexit 101\n' >$policy && chmod 755 $policy && trap 'rm -f $policy' EXIT; fi
	DEBIAN_FRONTEND=noninteractive apt-get update -qq
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends mariadb-server mariadb-client
	rm -f $policy
	trap - EXIT
fi
echo "mariadbd: $(/usr/sbin/mariadbd --version | cut -d' ' -f1-4)"

rm -rf "$D"
mkdir -p "$D" && chmod 755 "$D"
trap cleanup EXIT

say "start a private MariaDB in $D/db and apply the schema"
start_db
echo "root@unix($SOCK)/pofr" >"$D/admin.dsn"
chmod 600 "$D/admin.dsn"
"$BIN/pofr-server" schema apply --dsn-file "$D/admin.dsn"
head -c 18 /dev/urandom | base64 >"$D/loader.pw"
head -c 18 /dev/urandom | base64 >"$D/reader.pw"
"$BIN/pofr-server" schema users --dsn-file "$D/admin.dsn" --loader-password-file "$D/loader.pw" --reader-password-file "$D/reader.pw"
echo "pofr_loader:$(cat "$D/loader.pw")@unix($SOCK)/pofr" >"$D/loader.dsn"
echo "pofr_reader:$(cat "$D/reader.pw")@unix($SOCK)/pofr" >"$D/reader.dsn"
chmod 600 "$D"/*.dsn "$D"/*.pw

say "start the receiver (pofr-server serve) on loopback"
port=$(( 20000 + RANDOM % 20000 ))
"$BIN/pofr-server" serve --listen "127.0.0.1:$port" --state-dir "$D/server" >"$D/serve.log" 2>&1 &
pids+=($!)
for _ in $(seq 100); do grep -q 'host key' "$D/serve.log" 2>/dev/null && break; sleep 0.1; done
fp=$(grep -o 'SHA256:[A-Za-z0-9+/]*' "$D/serve.log" | head -n1)
[[ -n $fp ]] || { cat "$D/serve.log"; die "receiver did not start"; }
echo "listening on 127.0.0.1:$port, host key $fp"

say "register this host with a one-time token"
"$BIN/pofr-server" token create --state-dir "$D/server" --ttl 10m >"$D/token"
"$BIN/pofr-collector" register --server "127.0.0.1:$port" --server-fingerprint "$fp" \
	--token-file "$D/token" --config-dir "$D/client"

say "record: pofr-collector run, while a scripted workload runs"
"$BIN/pofr-collector" run --config-dir "$D/client" --state-dir "$D/collector" \
	--segment-age 2s --status-interval 5s >"$D/collector.log" 2>&1 &
cpid=$!
pids+=($cpid)
for _ in $(seq 100); do grep -q 'collector started' "$D/collector.log" 2>/dev/null && break; sleep 0.1; done
grep -q 'collector started' "$D/collector.log" || { cat "$D/collector.log"; die "collector did not start"; }
sleep 1

"$BIN/demo-httpd" -port-file "$D/http.port" -for 60s &
pids+=($!)
for _ in $(seq 50); do [[ -s $D/http.port ]] && break; sleep 0.1; done
hport=$(cat "$D/http.port")
mkdir -p "$D/work"
cat >"$D/work/job.sh" <<EOF
#!/bin/bash
# the demo's "job": a pipeline, a download over TCP, files written, renamed and deleted
cd "$D/work"
grep -h -i -E '^(NAME|VERSION)=' /etc/os-release | sort | uniq -c > os.txt
exec 3<>/dev/tcp/127.0.0.1/$hport
printf 'GET /payload.bin HTTP/1.0\r\nHost: localhost\r\n\r\n' >&3
cat <&3 > payload.http
exec 3<&-
sha256sum payload.http > payload.sha256
mv payload.sha256 checksum.txt
rm -f payload.http
ls -l > listing.txt
EOF
chmod 755 "$D/work/job.sh"
"$D/work/job.sh"
echo "workload done: $(ls "$D/work" | tr '\n' ' ')"

say "seal, push and stop the collector"
sleep 3
kill -TERM "$cpid"
wait "$cpid" || true
tail -n 3 "$D/collector.log"
"$BIN/pofr-collector" status --state-dir "$D/collector" || true

say "load into MariaDB (pofr-server load)"
"$BIN/pofr-server" load --state-dir "$D/server" --dsn-file "$D/loader.dsn"

say "the workload's process tree"
q tree --host "$(hostname)" --under "$D/work/job.sh" 2>/dev/null || q ran --argv-like "%$D/work/job.sh%"
say "its connections, with their owners"
q conns --port "$hport"
say "the files it touched"
q touched "$D/work/"
say "custody: hosts, segments and chain status"
q hosts
q gaps --host "$(hostname)"

cat <<EOF

$(printf '\033[1m')Explore further$(printf '\033[0m') (each starts the demo database again and stops it after):
  scripts/demo.sh query timeline --host $(hostname) --since 1h
  scripts/demo.sh query ran --user root
  scripts/demo.sh query conns --listening
  scripts/demo.sh query --help
  scripts/demo.sh sql                 # plain SQL: SELECT * FROM processes LIMIT 10;
  make demo-clean                     # remove $D
EOF
