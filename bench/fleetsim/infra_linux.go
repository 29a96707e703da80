package fleetsim

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"sync"
	"time"

	"github.com/pofr/pofr/bench"
	"github.com/pofr/pofr/fleet"
	"github.com/pofr/pofr/internal/daemon"
	"github.com/pofr/pofr/internal/mariadbd"
)

// dbName is the database of every shard and of the head; regDBName the
// shared registry's, on shard s1's server (node 1).
const (
	dbName    = "pofr"
	regDBName = "pofr_registry"
)

// serverSettings are every mariadbd's: the harness's character set and
// time zone, a 256 MB buffer pool (several servers share the machine), no
// binary log, durability as shipped.
var serverSettings = []string{
	"--skip-name-resolve",
	"--character-set-server=utf8mb4",
	"--collation-server=utf8mb4_general_ci",
	"--innodb-buffer-pool-size=256M",
	"--innodb-buffer-pool-dump-at-shutdown=0",
	"--innodb-buffer-pool-load-at-startup=0",
	"--skip-log-bin",
}

// galeraSettings are added on Galera nodes: what the loader's start check
// asks for (NOBLOB row images) and the usual Galera durability (a commit
// is safe once replicated; the log is flushed every second).
var galeraSettings = []string{"--binlog-row-image=NOBLOB", "--innodb-flush-log-at-trx-commit=2"}

// shardDB is one shard: a mariadbd, or the nodes of a Galera cluster (node
// 0 is the loader's first node and the head's link; the others replicas).
type shardDB struct {
	name    string
	nodes   []*mariadbd.Server
	cluster *mariadbd.Cluster
}

func (s *shardDB) dsn(i int) string {
	return s.nodes[i].Config("root", "", dbName).FormatDSN()
}

func (s *shardDB) stop() error {
	if s.cluster != nil {
		return s.cluster.Stop()
	}
	return s.nodes[0].Stop()
}

// startShard starts shard name under dir: one mariadbd or a 3-node Galera
// cluster, with the pofr database created.
func startShard(ctx context.Context, dir, name string, galera bool, log *slog.Logger) (*shardDB, error) {
	d := filepath.Join(dir, name)
	if err := os.Mkdir(d, 0o700); err != nil {
		return nil, err
	}
	s := &shardDB{name: name}
	if galera {
		c, err := mariadbd.StartGalera(ctx, mariadbd.GaleraOptions{Dir: d, Name: "pofr-" + name,
			Settings: append(append([]string{}, serverSettings...), galeraSettings...),
			// Quick failure detection: a killed node leaves the primary
			// component within seconds.
			ProviderOptions: []string{"evs.keepalive_period=PT0.5S", "evs.suspect_timeout=PT2S", "evs.inactive_timeout=PT4S"}})
		if err != nil {
			return nil, fmt.Errorf("shard %s: %w", name, err)
		}
		s.cluster, s.nodes = c, c.Nodes
	} else {
		m, err := mariadbd.Start(ctx, mariadbd.Options{Dir: d, Settings: serverSettings, Log: log})
		if err != nil {
			return nil, fmt.Errorf("shard %s: %w", name, err)
		}
		s.nodes = []*mariadbd.Server{m}
	}
	if err := exec1(ctx, s.nodes[0], "CREATE DATABASE "+dbName, "CREATE DATABASE "+regDBName); err != nil {
		s.stop()
		return nil, err
	}
	return s, nil
}

// exec1 runs statements as root on server m.
func exec1(ctx context.Context, m *mariadbd.Server, stmts ...string) error {
	db, err := sql.Open("mysql", m.Config("root", "", "").FormatDSN())
	if err != nil {
		return err
	}
	defer db.Close()
	for _, q := range stmts {
		if _, err := db.ExecContext(ctx, q); err != nil {
			return fmt.Errorf("%s: %w", q, err)
		}
	}
	return nil
}

// databases are the shards and the head of one run.
type databases struct {
	shards []*shardDB
	head   *mariadbd.Server
	mapf   string // the shard map (shards.json)
}

// startDatabases starts the shards and the head in parallel, installs
// Spider on the head and writes the shard map with root DSN files over
// each server's socket, its registry in a database of shard s1's server.
func startDatabases(ctx context.Context, dir string, shards int, galera bool, log *slog.Logger) (_ *databases, err error) {
	d := &databases{shards: make([]*shardDB, shards)}
	defer func() {
		if err != nil {
			d.stop(log)
		}
	}()
	var wg sync.WaitGroup
	errs := make([]error, shards+1)
	for i := range shards {
		wg.Go(func() {
			d.shards[i], errs[i] = startShard(ctx, dir, "s"+strconv.Itoa(i+1), galera, log)
		})
	}
	wg.Go(func() {
		hd := filepath.Join(dir, "head")
		if errs[shards] = os.Mkdir(hd, 0o700); errs[shards] != nil {
			return
		}
		if d.head, errs[shards] = mariadbd.Start(ctx, mariadbd.Options{Dir: hd, Settings: serverSettings, Log: log}); errs[shards] != nil {
			return
		}
		errs[shards] = exec1(ctx, d.head, "CREATE DATABASE "+dbName, "INSTALL SONAME 'ha_spider'")
	})
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return d, err
	}
	write := func(name, dsn string) (string, error) {
		p := filepath.Join(dir, name)
		return p, os.WriteFile(p, []byte(dsn+"\n"), 0o600)
	}
	var m fleet.Map
	for _, s := range d.shards {
		fs := fleet.Shard{Name: s.name}
		for i := range s.nodes {
			f, err := write(s.name+"-node"+strconv.Itoa(i+1)+".dsn", s.dsn(i))
			if err != nil {
				return d, err
			}
			fs.LoaderDSNFiles = append(fs.LoaderDSNFiles, f)
		}
		fs.AdminDSNFile, fs.ReaderDSNFile = fs.LoaderDSNFiles[0], fs.LoaderDSNFiles[0]
		m.Shards = append(m.Shards, fs)
	}
	hf, err := write("head.dsn", d.headDSN())
	if err != nil {
		return d, err
	}
	m.Head = &fleet.Head{AdminDSNFile: hf, ReaderDSNFile: hf}
	rf, err := write("registry.dsn", d.shards[0].nodes[0].Config("root", "", regDBName).FormatDSN())
	if err != nil {
		return d, err
	}
	m.Registry = &fleet.Registry{DSNFile: rf}
	d.mapf = filepath.Join(dir, "shards.json")
	return d, m.Save(d.mapf)
}

func (d *databases) headDSN() string { return d.head.Config("root", "", dbName).FormatDSN() }

// stop stops every server, logging failures.
func (d *databases) stop(log *slog.Logger) {
	for _, s := range d.shards {
		if s != nil {
			if err := s.stop(); err != nil {
				log.Warn("stop shard", "shard", s.name, "err", err)
			}
		}
	}
	if d.head != nil {
		if err := d.head.Stop(); err != nil {
			log.Warn("stop head", "err", err)
		}
	}
}

// receiverProc is one pofr-server serve with its own state directory
// (inboxes, host key); a restart keeps its address.
type receiverProc struct {
	name  string
	state string
	addr  string
	fp    string
	proc  *daemon.Process
	runs  int
}

// startReceiver starts (or restarts, on r.addr) pofr-server serve on its
// state directory, with the shard map (and so the shared registry). All
// simulated hosts come from 127.0.0.1 through the balancer, so the
// per-address limits are raised to the fleet's size.
func startReceiver(ctx context.Context, bin, dir, mapf string, hosts int, r *receiverProc) error {
	listen := r.addr
	if listen == "" {
		listen = "127.0.0.1:0"
	}
	r.runs++
	perAddr := strconv.Itoa(max(2*hosts, 8))
	p, err := daemon.Start("pofr-server serve "+r.name,
		exec.Command(bin, "serve", "--listen", listen, "--state-dir", r.state, "--shards", mapf,
			"--max-startups", perAddr, "--max-startups-per-addr", perAddr, "--max-conns-per-host", "8"),
		filepath.Join(dir, fmt.Sprintf("serve-%s-%d.log", r.name, r.runs)))
	if err != nil {
		return err
	}
	if _, err := p.WaitLog(ctx, regexp.MustCompile(`(?m)^host key SHA256:`), 30*time.Second); err != nil {
		p.Stop(10 * time.Second)
		return err
	}
	out, err := os.ReadFile(p.LogPath())
	if err != nil {
		p.Stop(10 * time.Second)
		return err
	}
	b, ok := bench.ParseServeBanner(out)
	if !ok {
		p.Stop(10 * time.Second)
		return fmt.Errorf("pofr-server serve: no address and host key in its output: %s", out)
	}
	r.addr, r.fp, r.proc = b.Addr, b.Fingerprint, p
	return nil
}
