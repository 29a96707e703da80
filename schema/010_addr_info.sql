-- pofr schema, migration 010: where remote addresses are (country, city,
-- autonomous system, PTR name), looked up when segments are loaded and kept
-- by address, so plain SQL can filter on them (WHERE country = 'RU').

CREATE TABLE IF NOT EXISTS addr_info (
  addr         VARBINARY(16) NOT NULL COMMENT 'Address exactly as sock_events.remote_addr holds it (4 or 16 bytes; an IPv4-mapped address is kept in its 16-byte form), so it joins on equality.',
  country      CHAR(2) CHARACTER SET ascii NULL COMMENT 'ISO 3166 country code from the geolocation database; NULL if it does not know the address.',
  city         VARCHAR(255) NULL COMMENT 'City (English name) from the geolocation database; NULL if unknown.',
  asn          INT UNSIGNED NULL COMMENT 'Autonomous system number from the geolocation database; NULL if unknown.',
  as_org       VARCHAR(255) NULL COMMENT 'Autonomous system organisation; NULL if unknown.',
  ptr          VARBINARY(255) NULL COMMENT 'First PTR name of the address without the final dot, as the DNS server returned it; NULL if none, failed or not asked.',
  edition      VARCHAR(128) NULL COMMENT 'Geolocation database the location came from: its type and build date (e.g. GeoLite2-City 2026-11-28); NULL if none was used or it did not know the address.',
  resolved_at  DATETIME(6) NOT NULL COMMENT 'When the loader looked the address up (UTC); a later lookup replaces the row.',
  PRIMARY KEY (addr),
  KEY country (country),
  KEY asn (asn)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COMMENT='Where the remote addresses of loaded sockets are, looked up at load time off the load path (pofr-server load --geoip, --resolve). Kept by address; not partitioned.';
