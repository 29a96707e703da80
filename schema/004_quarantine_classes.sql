-- pofr schema, migration 004: the quarantine classes of the hardened loader
-- (a fork of a host's chain, timestamps outside 1970-2200, a value longer
-- than its column, data the database refused).

ALTER TABLE quarantine MODIFY class VARCHAR(32) CHARACTER SET ascii NOT NULL
  COMMENT 'Kind of refusal: corrupt, bad_signature, wrong_host, too_large, too_long (a value longer than its column), unsupported_version, name, fork (another digest at a loaded seq), replay, time_range (a timestamp outside 1970-2200), unknown_host, revoked_host (deregistered), decode, load (MariaDB warned), database (MariaDB refused the data).';
