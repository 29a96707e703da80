-- pofr schema, migration 009: login, logout and failed-login records of the
-- hosts (login_events), from wtmp and btmp.

CREATE TABLE IF NOT EXISTS login_events (
  segment_id   BIGINT UNSIGNED NOT NULL COMMENT 'Ledger row (segments) the row was loaded from.',
  row_no       INT UNSIGNED NOT NULL COMMENT 'Row index within the segment''s login member.',
  host_id      VARCHAR(63) CHARACTER SET ascii COLLATE ascii_bin NOT NULL COMMENT 'Host (from the segment manifest).',
  boot_id      VARCHAR(64) CHARACTER SET ascii COLLATE ascii_bin NOT NULL COMMENT 'Boot of the host when the record was read (from the segment manifest).',
  ts           DATETIME(6) NOT NULL COMMENT 'Time of the record (ut_tv, UTC, microseconds).',
  ts_ns        SMALLINT UNSIGNED NOT NULL COMMENT 'Nanoseconds beyond the microsecond of ts (always 0: utmp has microseconds).',
  tz_offset    MEDIUMINT NOT NULL COMMENT 'Host''s UTC offset in seconds (from the segment manifest).',
  kind         VARCHAR(16) CHARACTER SET ascii NULL COMMENT 'login (wtmp USER_PROCESS), logout (wtmp DEAD_PROCESS), failed (any btmp record), boot, runlevel or other.',
  file         VARCHAR(8) CHARACTER SET ascii NULL COMMENT 'The file the record was read from: wtmp or btmp.',
  ut_type      INT NOT NULL COMMENT 'ut_type as the file holds it (7 USER_PROCESS, 8 DEAD_PROCESS, 6 LOGIN_PROCESS, …).',
  pid          INT NOT NULL COMMENT 'ut_pid: the login process (for sshd, the session''s privileged sshd process).',
  tty          VARBINARY(32) NULL COMMENT 'ut_line: the terminal without /dev/ (pts/3, ssh:notty), exact bytes.',
  ut_id        VARBINARY(4) NULL COMMENT 'ut_id: the terminal suffix or inittab id, exact bytes.',
  user         VARBINARY(32) NULL COMMENT 'ut_user: the user name as given (for failed logins, whatever the client sent), exact bytes.',
  remote_host  VARBINARY(256) NULL COMMENT 'ut_host: the remote host name or address as text (the kernel release on boot rows), exact bytes.',
  remote_addr  VARBINARY(16) NULL COMMENT 'ut_addr_v6: the remote address, 4 or 16 bytes in network order (INET6_NTOA shows it); NULL if none.',
  session      INT NOT NULL COMMENT 'ut_session: the session id the writer recorded (often 0).',
  PRIMARY KEY (segment_id, row_no, ts),
  KEY host_ts (host_id, ts),
  KEY user_ts (user, ts),
  KEY remote (remote_addr, ts)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COMMENT='Login, logout and failed-login records from wtmp and btmp (struct utmp), byte-exact.'
  PARTITION BY RANGE COLUMNS(ts) (PARTITION pmax VALUES LESS THAN (MAXVALUE));
