#!/bin/sh
# man.sh BINARY: renders BINARY --help and every command's --help as a
# section 8 man page (roff) on stdout. The help texts are the manual; this
# only wraps them, escaped, in .nf blocks.
set -eu
bin=$1
name=$(basename "$bin")
esc() { sed -e 's/\\/\\e/g' -e 's/^\([.'"'"']\)/\\\&\1/'; }
date=$(date -u -d "@${SOURCE_DATE_EPOCH:-$(date +%s)}" +%Y-%m-%d)
printf '.TH %s 8 "%s" "pofr" "System Administration"\n' "$(echo "$name" | tr a-z A-Z)" "$date"
printf '.SH NAME\n%s \\- ' "$name"
"$bin" --help | head -n1 | esc
printf '.SH SYNOPSIS\n.nf\n'
"$bin" --help | esc
printf '.fi\n.SH COMMANDS\n'
"$bin" --help | awk '/^Commands:/{on=1; next} on && /^$/{exit} on && /^  [a-z]/{sub(/^  /, ""); split($0, f, /   +/); print f[1]}' |
while read -r cmd; do
	printf '.SS %s\n.nf\n' "$cmd"
	# shellcheck disable=SC2086 # a command may be two words
	"$bin" $cmd --help | esc
	printf '.fi\n'
done
