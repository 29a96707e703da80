package query

import (
	"testing"
	"time"
)

func TestStatementScript(t *testing.T) {
	s := Statement{Name: "tree", SQL: "SELECT 1\nORDER BY 1\nLIMIT 5 OFFSET 0\n", Params: []Param{
		{"host", "host-a"},
		{"at", time.Date(2024, 6, 20, 1, 30, 5, 123456000, time.UTC)},
		{"pid", int64(42)},
		{"none", nil},
		{"argv_like", "%<script>%"},
		{"quote", "it's"},
		{"path", []byte("/tmp/x\x1b\n\xff")},
	}}
	want := "SET @host = CONVERT('host-a' USING ascii) COLLATE ascii_bin,\n    @at = '2024-06-20 01:30:05.123456',\n    @pid = 42,\n    @none = NULL,\n" +
		"    @argv_like = '%<script>%',\n    @quote = X'69742773',\n    @path = X'2f746d702f781b0aff';\n" +
		"SELECT 1\nORDER BY 1\nLIMIT 5 OFFSET 0;\n"
	if got := s.Script(); got != want {
		t.Errorf("got\n%s\nwant\n%s", got, want)
	}
}

func TestPageClause(t *testing.T) {
	for _, c := range []struct {
		p    Page
		want string
	}{{Page{}, ""}, {Page{Limit: 10}, "\nLIMIT 10 OFFSET 0"}, {Page{Limit: 3, Offset: 6}, "\nLIMIT 3 OFFSET 6"}} {
		if got := c.p.clause(); got != c.want {
			t.Errorf("%+v: got %q, want %q", c.p, got, c.want)
		}
	}
}

// TestPageApply: a page's LIMIT goes at the page mark (else the end), and
// every part mark bounds its part to the page's last row.
func TestPageApply(t *testing.T) {
	const text = "(SELECT a FROM x ORDER BY a /*rows*/) UNION ALL (SELECT a FROM y ORDER BY a /*rows*/) ORDER BY a /*page*/"
	for _, c := range []struct {
		p          Page
		text, want string
	}{
		{Page{}, text, "(SELECT a FROM x ORDER BY a ) UNION ALL (SELECT a FROM y ORDER BY a ) ORDER BY a "},
		{Page{Limit: 3, Offset: 6}, text,
			"(SELECT a FROM x ORDER BY a LIMIT 9) UNION ALL (SELECT a FROM y ORDER BY a LIMIT 9) ORDER BY a \nLIMIT 3 OFFSET 6"},
		{Page{Limit: 3}, "SELECT 1", "SELECT 1\nLIMIT 3 OFFSET 0"},
	} {
		if got := c.p.apply(c.text); got != c.want {
			t.Errorf("%+v: got %q, want %q", c.p, got, c.want)
		}
	}
}
