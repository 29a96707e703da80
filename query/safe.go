package query

import (
	"encoding/base64"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Safe returns b as text that is safe to print on a terminal: valid UTF-8
// printable characters pass through; a backslash becomes \\; tab, newline and
// carriage return become \t, \n and \r; every other control character (C0,
// DEL, C1), every format character that can reorder text (bidi overrides and
// isolates, zero-width characters) and every byte that is not valid UTF-8 is
// escaped as \xNN (bytes and C0 controls) or \uNNNN / \UNNNNNNNN
// (characters), the escapes of bash's $'…' quoting. The escaping is
// unambiguous: a printed \ is always the start of an escape, so the original
// bytes can be recovered. No terminal escape sequence survives.
func Safe(b []byte) string {
	if isPlain(b) {
		return string(b)
	}
	var sb strings.Builder
	sb.Grow(len(b) + 8)
	appendSafe(&sb, b)
	return sb.String()
}

// SafeString is Safe for a string.
func SafeString(s string) string { return Safe([]byte(s)) }

// isPlain reports whether b is printable ASCII without backslashes, the
// common case that needs no work.
func isPlain(b []byte) bool {
	for _, c := range b {
		if c < 0x20 || c >= 0x7f || c == '\\' {
			return false
		}
	}
	return true
}

const hexDigits = "0123456789abcdef"

func appendSafe(sb *strings.Builder, b []byte) {
	for len(b) > 0 {
		r, n := utf8.DecodeRune(b)
		switch {
		case r == utf8.RuneError && n <= 1:
			sb.WriteString(`\x`)
			sb.WriteByte(hexDigits[b[0]>>4])
			sb.WriteByte(hexDigits[b[0]&0xf])
		case r == '\\':
			sb.WriteString(`\\`)
		case r == '\t':
			sb.WriteString(`\t`)
		case r == '\n':
			sb.WriteString(`\n`)
		case r == '\r':
			sb.WriteString(`\r`)
		case r < 0x20 || r == 0x7f:
			sb.WriteString(`\x`)
			sb.WriteByte(hexDigits[r>>4])
			sb.WriteByte(hexDigits[r&0xf])
		case needsEscape(r) && r <= 0xffff:
			sb.WriteString(`\u`)
			sb.WriteString(hex4(uint32(r), 4))
		case needsEscape(r):
			sb.WriteString(`\U`)
			sb.WriteString(hex4(uint32(r), 8))
		default:
			sb.WriteString(string(b[:n]))
		}
		b = b[n:]
	}
}

// needsEscape reports non-ASCII characters that must not reach a terminal as
// they are: C1 controls (U+0080–U+009F, among them the 8-bit CSI U+009B),
// format characters (bidi controls, zero-width characters, BOM), unassigned
// or private-use code points, and line or paragraph separators.
func needsEscape(r rune) bool {
	if r < 0x80 {
		return false
	}
	if r <= 0x9f {
		return true
	}
	return unicode.Is(unicode.Cf, r) || unicode.Is(unicode.Co, r) ||
		unicode.Is(unicode.Zl, r) || unicode.Is(unicode.Zp, r) ||
		!unicode.IsGraphic(r) && r != ' '
}

// hex4 formats v as n lowercase hex digits.
func hex4(v uint32, n int) string {
	buf := make([]byte, n)
	for i := n - 1; i >= 0; i-- {
		buf[i] = hexDigits[v&0xf]
		v >>= 4
	}
	return string(buf)
}

// SplitArgv splits argv as the kernel keeps it (/proc/PID/cmdline: each
// argument followed by a NUL byte) into its arguments. A last argument
// without its NUL (argv cut at the cap) is kept.
func SplitArgv(argv []byte) [][]byte {
	if len(argv) == 0 {
		return nil
	}
	if argv[len(argv)-1] == 0 {
		argv = argv[:len(argv)-1]
	}
	var out [][]byte
	for {
		i := indexByte(argv, 0)
		if i < 0 {
			return append(out, argv)
		}
		out = append(out, argv[:i])
		argv = argv[i+1:]
	}
}

func indexByte(b []byte, c byte) int {
	for i, x := range b {
		if x == c {
			return i
		}
	}
	return -1
}

// FormatArgv returns argv as one line of shell-like words separated by
// spaces: an argument made only of characters that a shell leaves alone is
// printed as it is; a printable one is put in single quotes ('it'\”s'); one
// that holds control characters or bytes that are not UTF-8 is printed in
// ANSI-C quoting ($'a\nb\x1b') with the escapes of [Safe], so that nothing
// in it can act on a terminal and the exact bytes can be read back.
func FormatArgv(argv []byte) string {
	var sb strings.Builder
	for i, a := range SplitArgv(argv) {
		if i > 0 {
			sb.WriteByte(' ')
		}
		sb.WriteString(QuoteArg(a))
	}
	return sb.String()
}

// QuoteArg quotes one argument the way [FormatArgv] does.
func QuoteArg(a []byte) string {
	if len(a) == 0 {
		return "''"
	}
	plain := true
	for _, c := range a {
		if !shellSafe(c) {
			plain = false
			break
		}
	}
	if plain {
		return string(a)
	}
	if s := Safe(a); s == string(a) {
		return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
	}
	return "$'" + strings.ReplaceAll(Safe(a), "'", `\'`) + "'"
}

func shellSafe(c byte) bool {
	switch {
	case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		return true
	}
	return strings.IndexByte("@%+=:,./-_", c) >= 0
}

// jsonBytes is the JSON form of a byte column: a string when the bytes are
// valid UTF-8 (encoding/json escapes control characters in it), and an
// object {"b64": "<standard base64 of the exact bytes>"} otherwise.
func jsonBytes(b []byte) any {
	if b == nil {
		return nil
	}
	if utf8.Valid(b) {
		return string(b)
	}
	return map[string]string{"b64": base64.StdEncoding.EncodeToString(b)}
}

// jsonArgv is the JSON form of argv: an array of arguments, each as jsonBytes.
func jsonArgv(argv []byte) any {
	if argv == nil {
		return nil
	}
	args := SplitArgv(argv)
	out := make([]any, len(args))
	for i, a := range args {
		out[i] = jsonBytes(a)
	}
	return out
}
