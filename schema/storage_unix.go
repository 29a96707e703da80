//go:build unix

package schema

import (
	"context"
	"database/sql"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
)

// DiskBytes is what table t of the connection's database takes on the
// file system: the allocated blocks (st_blocks × 512) of its .ibd files,
// every partition summed, after FLUSH TABLES … FOR EXPORT has written its
// dirty pages. It is the only measure of page compression (PAGE_COMPRESSED
// punches holes; information_schema keeps reporting logical pages) and it
// includes what InnoDB reserved but has not filled. The files are read
// through @@datadir, so the server must be on this machine (make bench's and
// the tests' private servers); the caller needs to be allowed to stat them.
func DiskBytes(ctx context.Context, db *sql.DB, t string) (int64, error) {
	conn, err := db.Conn(ctx)
	if err != nil {
		return 0, err
	}
	defer conn.Close()
	var datadir, dbname string
	if err := conn.QueryRowContext(ctx, "SELECT @@datadir, DATABASE()").Scan(&datadir, &dbname); err != nil {
		return 0, err
	}
	if _, err := conn.ExecContext(ctx, "FLUSH TABLES "+t+" FOR EXPORT"); err != nil {
		return 0, fmt.Errorf("flush %s: %w", t, err)
	}
	defer conn.ExecContext(context.WithoutCancel(ctx), "UNLOCK TABLES")
	files, err := filepath.Glob(filepath.Join(datadir, dbname, t+"*.ibd"))
	if err != nil {
		return 0, err
	}
	var total int64
	n := 0
	for _, f := range files {
		base := strings.TrimSuffix(filepath.Base(f), ".ibd")
		if base != t && !strings.HasPrefix(base, t+"#P#") && !strings.HasPrefix(base, t+"#p#") {
			continue
		}
		fi, err := os.Stat(f)
		if err != nil {
			return 0, err
		}
		st, ok := fi.Sys().(*syscall.Stat_t)
		if !ok {
			return 0, fmt.Errorf("%s: no stat_t", f)
		}
		total += st.Blocks * 512
		n++
	}
	if n == 0 {
		return 0, fmt.Errorf("no .ibd file of %s in %s", t, filepath.Join(datadir, dbname))
	}
	return total, nil
}
