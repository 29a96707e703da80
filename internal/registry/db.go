package registry

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/go-sql-driver/mysql"

	"github.com/pofr/pofr/internal/statedir"
	"github.com/pofr/pofr/spool"
	"github.com/pofr/pofr/wire"
)

// Tables are the registry's tables in MariaDB (docs/schema.md): the same
// JSON records as the files, keyed so that two receivers cannot write the
// same id twice, and one lock row that orders every change.
var Tables = []string{
	`CREATE TABLE IF NOT EXISTS registry_hosts (
		host_id VARCHAR(63) CHARACTER SET ascii COLLATE ascii_bin NOT NULL PRIMARY KEY COMMENT 'Host id assigned at approval.',
		status VARCHAR(16) CHARACTER SET ascii NOT NULL COMMENT 'active or revoked (also in the record).',
		shard VARCHAR(32) CHARACTER SET ascii NOT NULL DEFAULT '' COMMENT 'Shard holding the host''s rows; empty when not assigned (also in the record).',
		record MEDIUMBLOB NOT NULL COMMENT 'The host''s registry record, as host.json holds it in the file registry (facts, keys, status, shard).',
		updated_at TIMESTAMP(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6) ON UPDATE CURRENT_TIMESTAMP(6) COMMENT 'Last change (UTC).'
	) ENGINE=InnoDB COMMENT 'Shared registry: one row per registered host, active or revoked.'`,
	`CREATE TABLE IF NOT EXISTS registry_requests (
		request_id VARCHAR(64) CHARACTER SET ascii COLLATE ascii_bin NOT NULL PRIMARY KEY COMMENT 'Request id the host chose (32 hex digits).',
		pending BOOL NOT NULL COMMENT '1 while the request waits for a decision.',
		created_at DATETIME(6) NOT NULL COMMENT 'When the request arrived (UTC).',
		record MEDIUMBLOB NOT NULL COMMENT 'The request as requests/ID.json holds it in the file registry (facts, keys, status, decision).',
		KEY pending (pending)
	) ENGINE=InnoDB COMMENT 'Shared registry: registration requests, pending and decided.'`,
	`CREATE TABLE IF NOT EXISTS registry_tokens (
		token_sha256 CHAR(64) CHARACTER SET ascii COLLATE ascii_bin NOT NULL PRIMARY KEY COMMENT 'SHA-256 of the one-time token (hex); the token itself is not stored.',
		created_at DATETIME(6) NOT NULL COMMENT 'When the token was made (UTC).',
		expires_at DATETIME(6) NOT NULL COMMENT 'When it stops being accepted (UTC).'
	) ENGINE=InnoDB COMMENT 'Shared registry: unused one-time registration tokens; a token''s row is deleted when it is used.'`,
	`CREATE TABLE IF NOT EXISTS registry_lock (
		id TINYINT UNSIGNED NOT NULL PRIMARY KEY COMMENT 'Always 1.'
	) ENGINE=InnoDB COMMENT 'Shared registry: one row, locked (SELECT … FOR UPDATE) by every change, so that changes from several receivers are ordered.'`,
	`INSERT IGNORE INTO registry_lock (id) VALUES (1)`,
}

// maxRecordBytes bounds a record read back from the database.
const maxRecordBytes = 1 << 20

// opTimeout bounds one store operation, and one Update.
const opTimeout = time.Minute

// DB is the registry in MariaDB, shared by every receiver and loader that
// opens it; each keeps its own local state directory.
type DB struct {
	db    *sql.DB
	q     querier
	local statedir.Dir
	tx    bool
}

type querier interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

// OpenDB returns the registry kept in db, creating its tables if they do
// not exist; local is this server's state directory.
func OpenDB(ctx context.Context, db *sql.DB, local statedir.Dir) (*DB, error) {
	for _, q := range Tables {
		if _, err := db.ExecContext(ctx, q); err != nil {
			return nil, fmt.Errorf("registry tables: %w", err)
		}
	}
	return &DB{db: db, q: db, local: local}, nil
}

// Local returns this server's state directory.
func (d *DB) Local() statedir.Dir { return d.local }

// String names the store.
func (d *DB) String() string { return "MariaDB registry" }

func ctx() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), opTimeout)
}

// Host reads one host.
func (d *DB) Host(id string) (*Host, error) {
	if !spool.ValidHostID(id) {
		return nil, fmt.Errorf("load host %q: %w", id, ErrNotFound)
	}
	b, err := d.record("SELECT record FROM registry_hosts WHERE host_id = ?", "host", id, ErrNotFound)
	if err != nil {
		return nil, err
	}
	return decodeHost(id, b)
}

// Hosts reads every host, by id.
func (d *DB) Hosts() ([]*Host, error) {
	out, err := list(d, "hosts", "SELECT host_id, record FROM registry_hosts ORDER BY host_id", func(scan func(...any) error) (*Host, error) {
		var id string
		var b []byte
		if err := scan(&id, &b); err != nil {
			return nil, err
		}
		return decodeHost(id, b)
	})
	if err != nil {
		return nil, err
	}
	SortHosts(out)
	return out, nil
}

// list runs query and returns what read makes of each row; what names the
// list in errors.
func list[T any](d *DB, what, query string, read func(scan func(dest ...any) error) (T, error)) ([]T, error) {
	c, cancel := ctx()
	defer cancel()
	rows, err := d.q.QueryContext(c, query)
	if err != nil {
		return nil, fmt.Errorf("list %s: %w", what, err)
	}
	defer rows.Close()
	scan := func(dest ...any) error {
		if err := rows.Scan(dest...); err != nil {
			return fmt.Errorf("list %s: %w", what, err)
		}
		return nil
	}
	var out []T
	for rows.Next() {
		v, err := read(scan)
		if err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list %s: %w", what, err)
	}
	return out, nil
}

// PutHost writes h and creates its local directories.
func (d *DB) PutHost(h *Host) error {
	if !spool.ValidHostID(h.HostID) {
		return fmt.Errorf("save host %q: invalid host id", h.HostID)
	}
	b, err := json.Marshal(h)
	if err != nil {
		return fmt.Errorf("save host %s: %w", h.HostID, err)
	}
	c, cancel := ctx()
	defer cancel()
	if _, err := d.q.ExecContext(c, `INSERT INTO registry_hosts (host_id, status, shard, record) VALUES (?, ?, ?, ?)
		ON DUPLICATE KEY UPDATE status = VALUES(status), shard = VALUES(shard), record = VALUES(record)`,
		h.HostID, string(h.Status), h.Shard, b); err != nil {
		return fmt.Errorf("save host %s: %w", h.HostID, err)
	}
	if err := EnsureDirs(d.local, h.HostID); err != nil {
		return fmt.Errorf("save host: %w", err)
	}
	return nil
}

// Request reads one request.
func (d *DB) Request(id string) ([]byte, error) {
	if !wire.ValidRequestID(id) {
		return nil, fmt.Errorf("load request %q: %w", id, ErrNoRequest)
	}
	return d.record("SELECT record FROM registry_requests WHERE request_id = ?", "request", id, ErrNoRequest)
}

// record reads the record blob of what id with query; notFound when there
// is none.
func (d *DB) record(query, what, id string, notFound error) ([]byte, error) {
	c, cancel := ctx()
	defer cancel()
	var b []byte
	err := d.q.QueryRowContext(c, query, id).Scan(&b)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("load %s %s: %w", what, id, notFound)
	}
	if err != nil {
		return nil, fmt.Errorf("load %s %s: %w", what, id, err)
	}
	if len(b) > maxRecordBytes {
		return nil, fmt.Errorf("load %s %s: record of %d bytes", what, id, len(b))
	}
	return b, nil
}

// Requests reads every request, oldest first.
func (d *DB) Requests() ([][]byte, error) {
	return list(d, "requests", "SELECT record FROM registry_requests ORDER BY created_at, request_id", func(scan func(...any) error) ([]byte, error) {
		var b []byte
		if err := scan(&b); err != nil {
			return nil, err
		}
		if len(b) > maxRecordBytes {
			return nil, fmt.Errorf("list requests: record of %d bytes", len(b))
		}
		return b, nil
	})
}

// PutRequest writes a request.
func (d *DB) PutRequest(r Request) error {
	if !wire.ValidRequestID(r.ID) {
		return fmt.Errorf("save request %q: invalid id", r.ID)
	}
	c, cancel := ctx()
	defer cancel()
	if _, err := d.q.ExecContext(c, `INSERT INTO registry_requests (request_id, pending, created_at, record) VALUES (?, ?, ?, ?)
		ON DUPLICATE KEY UPDATE pending = VALUES(pending), record = VALUES(record)`,
		r.ID, r.Pending, r.CreatedAt.UTC(), r.Record); err != nil {
		return fmt.Errorf("save request %s: %w", r.ID, err)
	}
	return nil
}

// CountPending counts the pending requests.
func (d *DB) CountPending() (int, error) {
	c, cancel := ctx()
	defer cancel()
	var n int
	if err := d.q.QueryRowContext(c, "SELECT COUNT(*) FROM registry_requests WHERE pending").Scan(&n); err != nil {
		return 0, fmt.Errorf("count pending requests: %w", err)
	}
	return n, nil
}

// Token reads a token.
func (d *DB) Token(hash string) (Token, error) {
	var t Token
	if !validHash(hash) {
		return t, ErrNoToken
	}
	c, cancel := ctx()
	defer cancel()
	err := d.q.QueryRowContext(c, "SELECT created_at, expires_at FROM registry_tokens WHERE token_sha256 = ?", hash).Scan(&t.CreatedAt, &t.ExpiresAt)
	if errors.Is(err, sql.ErrNoRows) {
		return t, ErrNoToken
	}
	return t, err
}

// PutToken writes a token.
func (d *DB) PutToken(hash string, t Token) error {
	if !validHash(hash) {
		return errors.New("put token: invalid hash")
	}
	c, cancel := ctx()
	defer cancel()
	_, err := d.q.ExecContext(c, "INSERT INTO registry_tokens (token_sha256, created_at, expires_at) VALUES (?, ?, ?)",
		hash, t.CreatedAt.UTC(), t.ExpiresAt.UTC())
	return err
}

// DeleteToken removes a token; of concurrent deletes one only affects the
// row.
func (d *DB) DeleteToken(hash string) (bool, error) {
	if !validHash(hash) {
		return false, nil
	}
	c, cancel := ctx()
	defer cancel()
	res, err := d.q.ExecContext(c, "DELETE FROM registry_tokens WHERE token_sha256 = ?", hash)
	if err != nil {
		return false, err
	}
	n, err := res.RowsAffected()
	return n == 1, err
}

// maxConflicts bounds the retries of an Update that lost a conflict.
const maxConflicts = 5

// Update runs fn in one transaction that first locks the registry's lock
// row (SELECT … FOR UPDATE), so that changes from every receiver and admin
// command are ordered as with the file lock. On Galera, whose row locks do
// not reach other nodes, a conflicting commit fails with a deadlock error
// and the whole Update runs again.
func (d *DB) Update(fn func(Store) error) error {
	if d.tx {
		return fn(d)
	}
	for attempt := 1; ; attempt++ {
		err := d.update(fn)
		var me *mysql.MySQLError
		if attempt < maxConflicts && errors.As(err, &me) && (me.Number == 1213 || me.Number == 1205) {
			time.Sleep(time.Duration(attempt) * 20 * time.Millisecond)
			continue
		}
		return err
	}
}

func (d *DB) update(fn func(Store) error) error {
	c, cancel := ctx()
	defer cancel()
	tx, err := d.db.BeginTx(c, nil)
	if err != nil {
		return fmt.Errorf("lock registry: %w", err)
	}
	defer tx.Rollback()
	var one int
	if err := tx.QueryRowContext(c, "SELECT id FROM registry_lock WHERE id = 1 FOR UPDATE").Scan(&one); err != nil {
		return fmt.Errorf("lock registry: %w", err)
	}
	if err := fn(&DB{db: d.db, q: tx, local: d.local, tx: true}); err != nil {
		return err
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("registry commit: %w", err)
	}
	return nil
}
