-- pofr schema, migration 008: alerts fired by pofr-server alert, one row per
-- (rule, match), so that each match fires once however many servers run the
-- rules.

CREATE TABLE IF NOT EXISTS alerts_fired (
  rule       VARCHAR(64) CHARACTER SET ascii COLLATE ascii_bin NOT NULL COMMENT 'Name of the alert rule (rules file).',
  match_key  BINARY(32) NOT NULL COMMENT 'SHA-256 of the match''s key (what makes two matches of a rule the same alert).',
  match_text VARBINARY(1024) NOT NULL COMMENT 'The match''s key in words, truncated to 1024 bytes.',
  fired_at   DATETIME(6) NOT NULL COMMENT 'When the alert was claimed and sent (UTC).',
  PRIMARY KEY (rule, match_key)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COMMENT='Alerts already fired: a match fires when its row is inserted, never again.';
