package query

import (
	"encoding/hex"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Statement is one query as a [Querier] ran it: the name of its file, the
// user variables it set and the exact SQL text (with any LIMIT a [Page]
// added).
type Statement struct {
	Name   string
	Params []Param
	SQL    string
}

// Script returns the statement as an analyst can paste it into the mariadb
// client: a SET of every parameter as a literal, then the SQL, each ended by
// a semicolon. Values that are not printable ASCII are hex literals, so the
// script is exact under any sql_mode and holds no control character.
func (s Statement) Script() string {
	var b strings.Builder
	if len(s.Params) > 0 {
		b.WriteString("SET ")
		for i, p := range s.Params {
			if i > 0 {
				b.WriteString(",\n    ")
			}
			fmt.Fprintf(&b, "@%s = %s", p.Name, bindExpr(p, Literal(p.Value)))
		}
		b.WriteString(";\n")
	}
	b.WriteString(strings.TrimRight(s.SQL, "\n; "))
	b.WriteString(";\n")
	return b.String()
}

// Literal returns v (a parameter value) as a MariaDB literal: NULL, a number,
// a quoted DATETIME(6) in UTC, a quoted string when it is printable ASCII
// without quotes or backslashes, else a hex literal (X'…').
func Literal(v any) string {
	switch x := v.(type) {
	case nil:
		return "NULL"
	case int:
		return strconv.Itoa(x)
	case int64:
		return strconv.FormatInt(x, 10)
	case uint64:
		return strconv.FormatUint(x, 10)
	case bool:
		if x {
			return "1"
		}
		return "0"
	case time.Time:
		return "'" + x.UTC().Format("2006-01-02 15:04:05.999999") + "'"
	case string:
		return quoteBytes([]byte(x))
	case []byte:
		return quoteBytes(x)
	}
	return quoteBytes(fmt.Append(nil, v))
}

func quoteBytes(b []byte) string {
	for _, c := range b {
		if c < 0x20 || c >= 0x7f || c == '\'' || c == '\\' {
			return "X'" + hex.EncodeToString(b) + "'"
		}
	}
	return "'" + string(b) + "'"
}

// Text returns value v of column c as the table and CSV print it: text safe
// for a terminal (see [Safe] and [FormatArgv]), times in UTC or, with
// o.Local, the host's offset.
func (o Output) Text(c Column, v any) string { return o.text(c.Kind, v) }

// bindExpr is the expression that sets parameter p from v (a placeholder or
// a literal). A host id is set in the host_id columns' own collation
// (ascii_bin), which the variable keeps: a plain string variable is utf8mb4,
// and comparing it to host_id makes MariaDB convert the column and ignore
// its indexes (a full table scan for every "host_id = @host").
func bindExpr(p Param, v string) string {
	if _, ok := p.Value.(string); ok && p.Name == "host" {
		return "CONVERT(" + v + " USING ascii) COLLATE ascii_bin"
	}
	return v
}
