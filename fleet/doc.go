// Package fleet is pofr-server's shard map: which MariaDB servers (shards)
// hold which hosts' rows, and the optional Spider head that joins them for
// queries. The map is a small JSON file (by default
// /etc/pofr-server/shards.json); when it is absent the server behaves as a
// single MariaDB, exactly as before. The map names DSN files only: secrets
// stay in those files.
//
// A host is assigned a shard once, at registration or approval (Assign:
// an admin's pin first, else the open shard with the fewest hosts, ties by
// name), and the assignment is recorded with the host in the registry. Each
// host's rows live on its shard alone, so the loader writes every segment
// directly to one shard and the head routes by host_id.
package fleet
