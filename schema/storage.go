package schema

import (
	"context"
	"database/sql"
	"fmt"
)

// PageCompressedTables are the tables migration 014 made PAGE_COMPRESSED.
var PageCompressedTables = []string{"proc_events", "file_events", "sock_events", "dns_events", "login_events"}

// StorageWarnings reads the server settings that page compression of the
// event tables depends on and says, one sentence each, which of them defeat
// it (nothing when they are fine). The tables work either way; they only
// take their logical size on disk. What SQL cannot see — whether the data
// directory's file system punches holes — is in docs/operations.md.
func StorageWarnings(ctx context.Context, db *sql.DB) ([]string, error) {
	var algo string
	var pageSize int
	if err := db.QueryRowContext(ctx, "SELECT @@innodb_compression_algorithm, @@innodb_page_size").Scan(&algo, &pageSize); err != nil {
		return nil, fmt.Errorf("read compression settings: %w", err)
	}
	return storageWarnings(algo, pageSize), nil
}

func storageWarnings(algo string, pageSize int) []string {
	var w []string
	if algo == "none" {
		w = append(w, "innodb_compression_algorithm is none: the page-compressed event tables are written uncompressed "+
			"and take about four times the disk; set innodb_compression_algorithm=zlib in the server's configuration "+
			"(SET GLOBAL works until a restart)")
	}
	if pageSize <= 4096 {
		w = append(w, fmt.Sprintf("innodb_page_size is %d: a compressed page still takes a whole 4 KiB file system block, "+
			"so page compression saves nothing; the event tables take their logical size on disk", pageSize))
	}
	return w
}
