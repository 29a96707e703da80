-- pofr schema, migration 013: containers, the runtime name, image and
-- Kubernetes pod of each container id the hosts' processes ran in.

CREATE TABLE IF NOT EXISTS containers (
  segment_id    BIGINT UNSIGNED NOT NULL COMMENT 'Ledger row (segments) the row was loaded from.',
  row_no        INT UNSIGNED NOT NULL COMMENT 'Row index within the segment''s ctr member.',
  host_id       VARCHAR(63) CHARACTER SET ascii COLLATE ascii_bin NOT NULL COMMENT 'Host (from the segment manifest).',
  boot_id       VARCHAR(64) CHARACTER SET ascii COLLATE ascii_bin NOT NULL COMMENT 'Boot of the host (from the segment manifest).',
  ts            DATETIME(6) NOT NULL COMMENT 'When the first process row with this container id was seen (UTC, microseconds).',
  container_id  VARBINARY(1024) NULL COMMENT 'Container id as derived from the cgroup path; joins proc_events.container_id.',
  pid           INT NOT NULL COMMENT 'Process id of that first process row.',
  runtime       VARCHAR(16) CHARACTER SET ascii NULL COMMENT 'Runtime whose state named the container: docker, containerd or podman; NULL if none did.',
  name          VARBINARY(1024) NULL COMMENT 'Runtime container name (Docker Name without its slash, CRI container name, Podman''s first name), exact bytes; NULL if unknown.',
  image         VARBINARY(4096) NULL COMMENT 'Image the container was created from, as the runtime recorded it; NULL if unknown.',
  pod           VARBINARY(1024) NULL COMMENT 'Kubernetes pod name (io.kubernetes.pod.name); NULL if none.',
  namespace     VARBINARY(1024) NULL COMMENT 'Kubernetes namespace (io.kubernetes.pod.namespace); NULL if none.',
  source        VARBINARY(4096) NULL COMMENT 'State file the row was read from, a path on the host; NULL if none was found.',
  error         VARCHAR(16) CHARACTER SET ascii NULL COMMENT 'Why there is no name: not_found, too_large, parse_error or read_error; NULL when found.',
  PRIMARY KEY (segment_id, row_no),
  KEY host_container (host_id, container_id(64), ts),
  KEY name_host (name(64), host_id),
  KEY pod_host (pod(64), host_id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COMMENT='Container ids of a host with their runtime name, image and pod, read from the runtime''s state when a process in the container is first seen. Not partitioned; kept until the host is purged (small).';
