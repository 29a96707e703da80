package mariadbd

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/pofr/pofr/internal/daemon"
)

// GaleraProvider is the wsrep provider library of the galera-4 package.
const GaleraProvider = "/usr/lib/galera/libgalera_smm.so"

// LookGalera reports whether a Galera cluster can be started here: mariadbd,
// the galera-4 provider and rsync (the state transfer method).
func LookGalera() error {
	if _, _, err := Look(); err != nil {
		return err
	}
	if _, err := os.Stat(GaleraProvider); err != nil {
		return fmt.Errorf("galera provider: %w (apt-get install galera-4)", err)
	}
	if _, err := daemon.LookTool("rsync"); err != nil {
		return fmt.Errorf("%w (apt-get install rsync)", err)
	}
	return nil
}

// GaleraOptions say where and how a Galera cluster runs.
type GaleraOptions struct {
	// Dir is an existing directory (made traversable, mode 0711); node i
	// (from 1) lives in Dir/gI.
	Dir string
	// Nodes is the cluster size (default 3).
	Nodes int
	// Settings go to every node, as Options.Settings.
	Settings []string
	// ProviderOptions are appended to the wsrep provider options of every
	// node ("evs.suspect_timeout=PT2S", …).
	ProviderOptions []string
	// Name is the cluster name (default "pofr-test").
	Name string
}

// Cluster is a running Galera cluster of private mariadbd processes on
// 127.0.0.1: node 1 bootstrapped it (--wsrep-new-cluster), the others
// joined it with an rsync state transfer. Each node listens on TCP.
type Cluster struct {
	Nodes []*Server
}

// galeraPorts are a node's group communication, incremental and full state
// transfer ports.
type galeraPorts struct{ gcomm, ist, sst int }

// StartGalera starts a Galera cluster and waits until every node is Synced
// and sees all the others. A node that fails stops the ones started.
func StartGalera(ctx context.Context, o GaleraOptions) (_ *Cluster, err error) {
	if err := LookGalera(); err != nil {
		return nil, err
	}
	if o.Nodes <= 0 {
		o.Nodes = 3
	}
	if o.Name == "" {
		o.Name = "pofr-test"
	}
	// The nodes run as mysql and must reach their directories.
	if err := os.Chmod(o.Dir, 0o711); err != nil {
		return nil, fmt.Errorf("start galera: %w", err)
	}
	c := &Cluster{}
	defer func() {
		if err != nil {
			c.Stop()
		}
	}()
	var addrs []string // gcomm addresses of the nodes started
	for i := range o.Nodes {
		name := "g" + strconv.Itoa(i+1)
		dir := filepath.Join(o.Dir, name)
		// A node's ports are chosen right before it starts (they are in
		// the range outgoing connections take theirs from, and another
		// process may take one), and chosen again if one was taken still.
		for attempt := 1; ; attempt++ {
			ports, err := freePorts(3)
			if err != nil {
				return nil, err
			}
			p := galeraPorts{ports[0], ports[1], ports[2]}
			if err := os.Mkdir(dir, 0o700); err != nil {
				return nil, fmt.Errorf("start galera node %s: %w", name, err)
			}
			s, err := Start(ctx, Options{Dir: dir, Settings: o.Settings, ServerArgs: o.nodeArgs(i, name, p, addrs), TCP: true})
			if err != nil {
				os.RemoveAll(dir)
				if errors.Is(err, errPortInUse) && attempt < 3 && ctx.Err() == nil {
					continue
				}
				return nil, fmt.Errorf("galera node %s: %w", name, err)
			}
			c.Nodes = append(c.Nodes, s)
			addrs = append(addrs, "127.0.0.1:"+strconv.Itoa(p.gcomm))
			break
		}
		if err := c.WaitSynced(ctx, i+1, ReadyTimeout); err != nil {
			return nil, err
		}
	}
	return c, nil
}

// nodeArgs are the server arguments of node i (from 0), named name, on
// ports p, joining the nodes at addrs (node 0 bootstraps the cluster).
func (o *GaleraOptions) nodeArgs(i int, name string, p galeraPorts, addrs []string) []string {
	addr := "127.0.0.1:" + strconv.Itoa(p.gcomm)
	popts := append([]string{
		"gmcast.listen_addr=tcp://" + addr,
		"ist.recv_addr=127.0.0.1:" + strconv.Itoa(p.ist),
		"gcache.size=64M",
	}, o.ProviderOptions...)
	args := []string{
		"--wsrep-on=ON",
		"--wsrep-provider=" + GaleraProvider,
		"--wsrep-cluster-name=" + o.Name,
		"--wsrep-cluster-address=gcomm://" + strings.Join(append(slices.Clip(addrs), addr), ","),
		"--wsrep-node-name=" + name,
		"--wsrep-node-address=" + addr,
		"--wsrep-provider-options=" + strings.Join(popts, ";"),
		"--wsrep-sst-receive-address=127.0.0.1:" + strconv.Itoa(p.sst),
		"--wsrep-sst-method=rsync",
		"--binlog-format=ROW",
		"--innodb-autoinc-lock-mode=2",
		"--wsrep-slave-threads=2",
	}
	if i == 0 {
		args = append(args, "--wsrep-new-cluster")
	}
	return args
}

// WaitSynced waits until every running node is Synced, ready and in a
// primary component of size nodes, for up to timeout after the last change
// of a node's state (Joiner, Joined, its view …).
func (c *Cluster) WaitSynced(ctx context.Context, nodes int, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	var state string
	for _, s := range c.Nodes {
		if !s.Running() {
			continue
		}
		db, err := sql.Open("mysql", s.Config("root", "", "").FormatDSN())
		if err != nil {
			return err
		}
		var last string
		for {
			st, err := s.wsrepStatus(ctx, db)
			if err == nil && st["wsrep_local_state_comment"] == "Synced" && st["wsrep_ready"] == "ON" &&
				st["wsrep_cluster_status"] == "Primary" && st["wsrep_cluster_size"] == strconv.Itoa(nodes) {
				break
			}
			last = fmt.Sprint(st, err)
			if now := fmt.Sprint(s.Dir, st["wsrep_local_state_comment"], st["wsrep_ready"], st["wsrep_cluster_status"], st["wsrep_cluster_size"]); err == nil && now != state {
				state, deadline = now, time.Now().Add(timeout)
			}
			if time.Now().After(deadline) || ctx.Err() != nil || !s.Running() {
				db.Close()
				return fmt.Errorf("galera node %s: not synced in a cluster of %d (waited up to %v after its last change of state; last: %s); its error log:\n%s",
					s.Dir, nodes, timeout, last, s.ErrorLogTail())
			}
			time.Sleep(100 * time.Millisecond)
		}
		db.Close()
	}
	return nil
}

// wsrepStatus returns the node's wsrep status variables.
func (s *Server) wsrepStatus(ctx context.Context, db *sql.DB) (map[string]string, error) {
	qctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	rows, err := db.QueryContext(qctx, "SHOW GLOBAL STATUS LIKE 'wsrep%'")
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	st := map[string]string{}
	for rows.Next() {
		var k, v string
		if err := rows.Scan(&k, &v); err != nil {
			return nil, err
		}
		st[strings.ToLower(k)] = v
	}
	return st, rows.Err()
}

// Stop stops the joiners, then the bootstrap node, and removes their
// directories.
func (c *Cluster) Stop() error {
	var errs []error
	for i := len(c.Nodes) - 1; i >= 0; i-- {
		errs = append(errs, c.Nodes[i].Stop())
	}
	return errors.Join(errs...)
}

// freePorts returns n distinct TCP ports on 127.0.0.1 that were free a
// moment ago (held open together, so none is returned twice).
func freePorts(n int) ([]int, error) {
	var ports []int
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, fmt.Errorf("find a free port: %w", err)
		}
		defer l.Close()
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}
