// Package schema holds pofr's MariaDB schema: versioned migrations
// (NNN_name.sql, applied in order and recorded in the schema_version table)
// and the views (views.sql, run after them every time: views hold no rows,
// so their one current definition replaces whatever a database had),
// embedded in the server binary, and the code that applies them.
//
// Migrations are idempotent (CREATE … IF NOT EXISTS, ADD … IF NOT EXISTS),
// so one cut short by a crash can simply be applied again; MariaDB commits
// DDL statement by statement, so nothing else could make that safe. A
// database whose schema_version is newer than the binary's newest migration
// is refused ([ErrNewer]): a binary never downgrades a schema.
//
// The same package administers the database around the schema: the day
// partitions of the event tables ([EnsurePartitions], [DropPartitions]) and
// the loader and reader accounts with exactly their privileges
// ([CreateUsers]).
package schema

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"io"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/go-sql-driver/mysql"
)

//go:embed *.sql
var files embed.FS

// Sentinel errors.
var (
	// ErrNewer reports a database whose schema is newer than this binary.
	ErrNewer = errors.New("schema: database schema is newer than this binary")
	// ErrOlder reports a database whose schema is older than this binary
	// (run pofr-server schema apply).
	ErrOlder = errors.New("schema: database schema is older than this binary")
)

// Migration is one schema/NNN_name.sql file.
type Migration struct {
	Version int    // NNN
	Name    string // the file name
	SQL     string // its text
}

var migrationName = regexp.MustCompile(`^([0-9]{3})_[a-z0-9_]+\.sql$`)

// Migrations returns the embedded migrations in version order.
func Migrations() []Migration {
	ents, err := files.ReadDir(".")
	if err != nil {
		panic(fmt.Sprintf("schema: read embedded migrations: %v", err))
	}
	var out []Migration
	for _, e := range ents {
		m := migrationName.FindStringSubmatch(e.Name())
		if m == nil {
			continue
		}
		v, _ := strconv.Atoi(m[1])
		b, err := files.ReadFile(e.Name())
		if err != nil {
			panic(fmt.Sprintf("schema: read %s: %v", e.Name(), err))
		}
		out = append(out, Migration{Version: v, Name: e.Name(), SQL: string(b)})
	}
	slices.SortFunc(out, func(a, b Migration) int { return a.Version - b.Version })
	return out
}

// viewsFile holds every view's current definition (see [Views]).
const viewsFile = "views.sql"

// Views returns the script that defines the views: CREATE OR REPLACE VIEW
// statements only, which [Apply] runs after the migrations every time.
func Views() string {
	b, err := files.ReadFile(viewsFile)
	if err != nil {
		panic(fmt.Sprintf("schema: read %s: %v", viewsFile, err))
	}
	return string(b)
}

// Latest returns the newest migration version this binary has.
func Latest() int {
	ms := Migrations()
	return ms[len(ms)-1].Version
}

// Print writes every migration, in order, and then the views as one SQL
// script.
func Print(w io.Writer) error {
	for _, m := range append(Migrations(), Migration{Name: viewsFile, SQL: Views()}) {
		if _, err := fmt.Fprintf(w, "-- ===== %s =====\n%s\n", m.Name, m.SQL); err != nil {
			return err
		}
	}
	return nil
}

// Statements splits a script into statements at semicolons outside quotes,
// backticks and comments. Comment-only pieces are dropped.
func Statements(script string) []string {
	var out []string
	start := 0
	emit := func(end int) {
		s := strings.TrimSpace(script[start:end])
		if s != "" && !commentOnly(s) {
			out = append(out, s)
		}
	}
	for i := 0; i < len(script); i++ {
		switch c := script[i]; {
		case c == '\'' || c == '"' || c == '`':
			for i++; i < len(script); i++ {
				if script[i] == '\\' && c != '`' {
					i++
				} else if script[i] == c {
					if i+1 < len(script) && script[i+1] == c {
						i++ // doubled quote
					} else {
						break
					}
				}
			}
		case c == '-' && strings.HasPrefix(script[i:], "-- "), c == '#':
			for i < len(script) && script[i] != '\n' {
				i++
			}
		case c == '/' && strings.HasPrefix(script[i:], "/*"):
			if j := strings.Index(script[i+2:], "*/"); j >= 0 {
				i += j + 3
			} else {
				i = len(script)
			}
		case c == ';':
			emit(i)
			start = i + 1
		}
	}
	emit(len(script))
	return out
}

// commentOnly reports whether s holds nothing but -- comments.
func commentOnly(s string) bool {
	for line := range strings.SplitSeq(s, "\n") {
		line = strings.TrimSpace(line)
		if line != "" && !strings.HasPrefix(line, "--") {
			return false
		}
	}
	return true
}

// Version returns the schema version of the database db is connected to: the
// highest version in schema_version, or 0 if there is no schema yet.
func Version(ctx context.Context, db interface {
	QueryRowContext(context.Context, string, ...any) *sql.Row
}) (int, error) {
	var v sql.NullInt64
	err := db.QueryRowContext(ctx, "SELECT MAX(version) FROM schema_version").Scan(&v)
	var me *mysql.MySQLError
	if errors.As(err, &me) && me.Number == 1146 { // ER_NO_SUCH_TABLE
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("read schema version: %w", err)
	}
	return int(v.Int64), nil
}

// Check returns nil if the database's schema is exactly this binary's, and
// an error wrapping ErrOlder or ErrNewer otherwise.
func Check(ctx context.Context, db *sql.DB) error {
	v, err := Version(ctx, db)
	if err != nil {
		return err
	}
	switch latest := Latest(); {
	case v < latest:
		return fmt.Errorf("%w: database has version %d, binary %d; run pofr-server schema apply", ErrOlder, v, latest)
	case v > latest:
		return fmt.Errorf("%w: database has version %d, binary only %d; upgrade pofr-server", ErrNewer, v, latest)
	}
	return nil
}

// Apply brings the database db is connected to up to this binary's newest
// migration and returns the versions it applied (none if it was current),
// then (re)defines the views from [Views], also when it applied none. It
// holds the named lock pofr_schema while it works, so concurrent runs apply
// each migration once. It refuses a newer database with ErrNewer.
func Apply(ctx context.Context, db *sql.DB) ([]int, error) {
	conn, err := db.Conn(ctx)
	if err != nil {
		return nil, fmt.Errorf("apply schema: %w", err)
	}
	defer conn.Close()
	var got sql.NullInt64
	if err := conn.QueryRowContext(ctx, "SELECT GET_LOCK('pofr_schema', 60)").Scan(&got); err != nil {
		return nil, fmt.Errorf("apply schema: take lock: %w", err)
	}
	if got.Int64 != 1 {
		return nil, errors.New("apply schema: another schema apply holds the lock pofr_schema")
	}
	defer conn.ExecContext(context.WithoutCancel(ctx), "DO RELEASE_LOCK('pofr_schema')")

	cur, err := Version(ctx, conn)
	if err != nil {
		return nil, err
	}
	ms := Migrations()
	if latest := ms[len(ms)-1].Version; cur > latest {
		return nil, fmt.Errorf("%w: database has version %d, binary only %d; refusing to downgrade", ErrNewer, cur, latest)
	}
	run := func(name, script string) error {
		for i, st := range Statements(script) {
			if _, err := conn.ExecContext(ctx, st); err != nil {
				return fmt.Errorf("apply %s statement %d: %w", name, i+1, err)
			}
		}
		return nil
	}
	var applied []int
	for _, m := range ms {
		if m.Version <= cur {
			continue
		}
		if err := run(m.Name, m.SQL); err != nil {
			return applied, err
		}
		if _, err := conn.ExecContext(ctx,
			"INSERT INTO schema_version (version, name) VALUES (?, ?) ON DUPLICATE KEY UPDATE name = VALUES(name)",
			m.Version, m.Name); err != nil {
			return applied, fmt.Errorf("apply %s: record version: %w", m.Name, err)
		}
		applied = append(applied, m.Version)
	}
	return applied, run(viewsFile, Views())
}
