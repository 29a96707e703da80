-- pofr schema, migration 017: containers.runtime also names CRI-O and a
-- user's rootless Podman storage (the column's comment only).

ALTER TABLE containers MODIFY COLUMN runtime VARCHAR(16) CHARACTER SET ascii NULL
  COMMENT 'Runtime whose state named the container: docker, containerd, podman (system-wide or a user''s rootless storage: see source) or crio; NULL if none did.';
