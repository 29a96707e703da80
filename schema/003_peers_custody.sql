-- pofr schema, migration 003: cross-host peer connections (the view
-- peer_connections, now in views.sql, and its index), archive retention
-- in the ledger, and the revoked_host quarantine class.

-- The join of peer_connections looks sockets up by their local end (this
-- host's address:port, and the remote port to narrow it): "who on which
-- host had this address:port open".
ALTER TABLE sock_events ADD INDEX IF NOT EXISTS local_end (local_addr, local_port, remote_port);

-- Archive retention (pofr-server retention --archive-keep) deletes archived
-- segment files; the ledger row stays and says when its file went, so that
-- pofr-server verify --archive tells an expired file from a missing one.
ALTER TABLE segments ADD COLUMN IF NOT EXISTS archive_removed_at DATETIME(6) NULL
  COMMENT 'When pofr-server retention deleted the archived segment file (UTC); NULL while it is kept.';

ALTER TABLE quarantine MODIFY class VARCHAR(32) CHARACTER SET ascii NOT NULL
  COMMENT 'Kind of refusal: corrupt, bad_signature, wrong_host, too_large, unsupported_version, name, replay, unknown_host, revoked_host (deregistered), decode, load.';
