#!/usr/bin/env bash
# packaging/test.sh: installs the .deb packages that 'make packages' built on
# this machine (as root, as an admin would), checks files, modes and
# conffiles, verifies the systemd units, runs the installed binaries with
# their installed configuration, upgrades (state kept), removes (service
# state and evidence kept) and purges (all gone); then inspects the .rpm
# packages with rpm -qp. It refuses to run on a machine that already has a
# pofr install, and takes the README test's lock so the two never overlap.
set -euo pipefail

fail() { printf 'packaging test: %s\n' "$*" >&2; exit 1; }
cd "$(dirname "$0")/.."
[[ $EUID -eq 0 ]] || fail "run as root"
for c in dpkg rpm systemd-analyze flock; do command -v "$c" >/dev/null || fail "$c not installed"; done
shopt -s nullglob
debs=(bin/pkg/pofr-collector_*.deb bin/pkg/pofr-server_*.deb)
rpms=(bin/pkg/pofr-collector-*.rpm bin/pkg/pofr-server-*.rpm)
((${#debs[@]} == 2 && ${#rpms[@]} == 2)) || fail "want one .deb and one .rpm of each package in bin/pkg: run make packages"

exec 9>/run/pofr-readme-test.lock
flock 9
state=(/etc/pofr /var/lib/pofr /etc/pofr-server /var/lib/pofr-server /usr/bin/pofr-collector /usr/bin/pofr-server)
for p in "${state[@]}"; do
	[[ ! -e $p ]] || fail "$p exists: this machine has a pofr install the test would change"
done
for p in pofr-collector pofr-server; do
	[[ $(dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null || true) != installed ]] || fail "package $p is installed"
done
cleanup() { dpkg --purge pofr-collector pofr-server >/dev/null 2>&1 || true; }
trap cleanup EXIT

mode() { # mode PATH WANT: octal mode and owner
	local got
	got=$(stat -c '%a %U:%G' "$1") || fail "$1 missing"
	[[ $got == "$2" ]] || fail "$1: $got, want $2"
}

echo "== dpkg -i"
dpkg -i "${debs[@]}"
mode /usr/bin/pofr-collector "755 root:root"
mode /usr/bin/pofr-server "755 root:root"
mode /etc/pofr "700 root:root"
mode /var/lib/pofr "700 root:root"
mode /var/lib/pofr/spool "700 root:root"
mode /etc/pofr-server "700 root:root"
mode /var/lib/pofr-server "700 root:root"
for u in pofr-collector pofr-server pofr-server-load pofr-server-alert; do mode /usr/lib/systemd/system/$u.service "644 root:root"; done
mode /etc/default/pofr-collector "644 root:root"
mode /etc/default/pofr-server "644 root:root"
for p in pofr-collector pofr-server; do
	# grep -q on the whole text, not on a pipe: under pipefail its early exit
	# would kill the writer with SIGPIPE and fail a check that matched.
	grep -q "^\.TH ${p^^} 8" <<<"$(zcat /usr/share/man/man8/$p.8.gz)" || fail "man page of $p"
done
grep -q '^\.SS load$' <<<"$(zcat /usr/share/man/man8/pofr-server.8.gz)" || fail "man page lacks the load command"
conf=$(dpkg-query -W -f='${Conffiles}\n' pofr-collector pofr-server)
for f in /etc/default/pofr-collector /etc/pofr/profiles/default.json /etc/pofr/profiles/busy-host.json /etc/pofr/profiles/forensic.json /etc/default/pofr-server; do
	grep -q " $f " <<<"$conf" || fail "$f is not a conffile: $conf"
done

echo "== systemd-analyze verify"
# mariadb.service (After= only) need not exist; any other message is a fault.
out=$(systemd-analyze verify /usr/lib/systemd/system/pofr-collector.service /usr/lib/systemd/system/pofr-server.service /usr/lib/systemd/system/pofr-server-load.service /usr/lib/systemd/system/pofr-server-alert.service 2>&1 || echo "exit $?")
if [[ -n $(grep -v -e 'mariadb.service' -e '^$' <<<"$out") ]]; then
	fail "systemd-analyze verify: $out"
fi
for u in pofr-collector pofr-server pofr-server-load pofr-server-alert; do
	grep -q '^ProtectSystem=strict$' /usr/lib/systemd/system/$u.service || fail "$u: no ProtectSystem=strict"
	grep -q '^NoNewPrivileges=yes$' /usr/lib/systemd/system/$u.service || fail "$u: no NoNewPrivileges"
	grep -q '^Restart=on-failure$' /usr/lib/systemd/system/$u.service || fail "$u: no Restart=on-failure"
	grep -q '^CapabilityBoundingSet=' /usr/lib/systemd/system/$u.service || fail "$u: no CapabilityBoundingSet"
done

echo "== run the installed binaries with the installed configuration"
pofr-collector --help >/dev/null
pofr-server --help >/dev/null
# The collector as its unit runs it (standalone: no server here), with the
# installed profile, until SIGTERM, which seals a segment into the spool.
timeout --preserve-status -s TERM 8 pofr-collector run --standalone --host-id pkgtest \
	--profile /etc/pofr/profiles/default.json --no-file --no-sock --segment-age 1s >/tmp/pofr-pkgtest-collector.log 2>&1 ||
	{ cat /tmp/pofr-pkgtest-collector.log; fail "pofr-collector run exited $?"; }
n=$(find /var/lib/pofr/spool -name '*.pofr' | wc -l)
((n > 0)) || { cat /tmp/pofr-pkgtest-collector.log; fail "no segment in /var/lib/pofr/spool"; }
pofr-collector spool verify >/dev/null || fail "spool verify"
# The receiver as its unit runs it (state in /var/lib/pofr-server).
timeout --preserve-status -s TERM 3 pofr-server serve --listen 127.0.0.1:0 >/tmp/pofr-pkgtest-server.log 2>&1 ||
	{ cat /tmp/pofr-pkgtest-server.log; fail "pofr-server serve exited $?"; }
[[ -s /var/lib/pofr-server/ssh_host_ed25519_key ]] || fail "serve left no host key in /var/lib/pofr-server"
# The example rules file parses (alert stops at the missing database, after
# reading its rules: the message names the DSN file, not the rules).
out=$(pofr-server alert --rules /usr/share/doc/pofr-server/alerts.example.json --dsn-file /nonexistent 2>&1 || true)
grep -q 'read DSN file' <<<"$out" || fail "alert with the example rules: $out"
hostkey=$(sha256sum </var/lib/pofr-server/ssh_host_ed25519_key)
rm -f /tmp/pofr-pkgtest-collector.log /tmp/pofr-pkgtest-server.log

echo "== upgrade keeps state and edited configuration"
echo '# edited by the admin' >>/etc/default/pofr-collector
dpkg -i "${debs[@]}"
[[ $(find /var/lib/pofr/spool -name '*.pofr' | wc -l) -eq $n ]] || fail "upgrade changed the spool"
[[ $(sha256sum </var/lib/pofr-server/ssh_host_ed25519_key) == "$hostkey" ]] || fail "upgrade changed the server's host key"
grep -q 'edited by the admin' /etc/default/pofr-collector || fail "upgrade replaced an edited conffile"

echo "== dpkg -r keeps evidence"
dpkg -r pofr-collector pofr-server
[[ ! -e /usr/bin/pofr-collector && ! -e /usr/bin/pofr-server ]] || fail "binaries left after remove"
[[ ! -e /usr/lib/systemd/system/pofr-collector.service ]] || fail "unit left after remove"
[[ $(find /var/lib/pofr/spool -name '*.pofr' | wc -l) -eq $n ]] || fail "remove deleted the spool"
[[ -s /var/lib/pofr-server/ssh_host_ed25519_key ]] || fail "remove deleted the server's state"
[[ -e /etc/default/pofr-collector ]] || fail "remove deleted a conffile"

echo "== dpkg -P deletes everything"
dpkg -P pofr-collector pofr-server
for p in "${state[@]}" /etc/default/pofr-collector /etc/default/pofr-server; do
	[[ ! -e $p ]] || fail "$p left after purge"
done
trap - EXIT

echo "== rpm -qp"
for r in "${rpms[@]}"; do
	rpm -qip "$r" >/dev/null || fail "rpm -qip $r"
	echo "$r:"
	rpm -qlvp "$r"
done
lst=$(rpm -qlvp "${rpms[@]}")
for want in '^-rwxr-xr-x .* /usr/bin/pofr-collector$' '^-rwxr-xr-x .* /usr/bin/pofr-server$' \
	'^drwx------ .* /etc/pofr$' '^drwx------ .* /var/lib/pofr$' '^drwx------ .* /var/lib/pofr/spool$' \
	'^drwx------ .* /etc/pofr-server$' '^drwx------ .* /var/lib/pofr-server$' \
	' /usr/lib/systemd/system/pofr-collector.service$' ' /usr/lib/systemd/system/pofr-server.service$' \
	' /usr/lib/systemd/system/pofr-server-load.service$' ' /usr/lib/systemd/system/pofr-server-alert.service$' ' /usr/share/man/man8/pofr-server.8.gz$'; do
	grep -qE -- "$want" <<<"$lst" || fail "rpm lacks $want"
done
cfg=$(rpm -qcp "${rpms[@]}")
for f in /etc/sysconfig/pofr-collector /etc/sysconfig/pofr-server /etc/pofr/profiles/default.json; do
	grep -qx "$f" <<<"$cfg" || fail "$f is not a %config file of the rpm: $cfg"
done
if grep -q /etc/default/ <<<"$lst"; then fail "the rpm ships /etc/default (RHEL uses /etc/sysconfig)"; fi
grep -q 'systemctl disable --now pofr-collector.service' <<<"$(rpm -qp --scripts "${rpms[0]}")" || fail "rpm preun does not stop the service"
echo "packaging test: ok"
