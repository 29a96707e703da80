// Package containers names the containers the host's processes run in: when
// a process row carries a container id not seen before (derived from its
// cgroup path), a worker reads the container runtime's own state on the host
// — Docker's config.v2.json, containerd's task bundle config.json (CRI
// annotations) and its bolt metadata meta.db (image and labels of any
// containerd container; read from an in-memory copy, since containerd holds
// an exclusive lock on it), containers/storage's containers.json (Podman, CRI-O with
// its pod metadata, and each user's rootless Podman storage) — and sends
// one ctr row with the runtime's container name, image and Kubernetes pod
// and namespace.
//
// Lookups are off the process source's path (a bounded queue; a full queue
// drops the id, to be tried again when it is next seen), cached by id
// (bounded), and parse state files of at most a size limit: the runtime
// writes them, but a container's own labels and annotations are in them.
package containers
