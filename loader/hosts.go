package loader

import (
	"cmp"
	"context"
	"fmt"
	"strings"

	"golang.org/x/crypto/ssh"

	"github.com/pofr/pofr/internal/registry"
)

// syncHosts copies the registry into the hosts table and returns the hosts
// by id.
func (l *Loader) syncHosts(ctx context.Context) (map[string]*registry.Host, error) {
	hosts, err := l.opt.Registry.Hosts()
	if err != nil {
		return nil, err
	}
	byID := make(map[string]*registry.Host, len(hosts))
	for _, h := range hosts {
		if l.opt.Hosts != nil && !l.opt.Hosts(h.HostID) {
			continue
		}
		byID[h.HostID] = h
		var fp any
		if pk, _, _, _, err := ssh.ParseAuthorizedKey([]byte(h.SSHKey)); err == nil {
			fp = ssh.FingerprintSHA256(pk)
		}
		var reg any
		if !h.RegisteredAt.IsZero() {
			reg = h.RegisteredAt.UTC()
		}
		var key any
		if len(h.SigningKey) > 0 {
			key = h.SigningKey
		}
		// A new host gets its row first; then every column copied from the
		// registry is updated. (Not INSERT … ON DUPLICATE KEY UPDATE: that
		// needs UPDATE on host_id, which the loader account does not have.)
		if _, err := l.db().ExecContext(ctx, "INSERT IGNORE INTO hosts (host_id, status, synced_at) VALUES (?, ?, UTC_TIMESTAMP(6))",
			h.HostID, cmp.Or(h.Status, registry.StatusActive)); err != nil {
			return nil, fmt.Errorf("sync host %s: %w", h.HostID, err)
		}
		if _, err := l.db().ExecContext(ctx, `UPDATE hosts SET hostname = ?, machine_id = ?, dmi_uuid = ?, ips = ?, os = ?, kernel = ?,
			version = ?, ssh_key_fp = ?, signing_key = ?, status = ?, registered_at = ?, last_ip = ?, synced_at = UTC_TIMESTAMP(6)
			WHERE host_id = ?`,
			text(h.Hostname, 255), text(h.MachineID, 64), text(h.DMIUUID, 64), text(strings.Join(h.IPs, ","), 65535),
			text(h.OS, 255), text(h.Kernel, 255), text(h.Version, 64), fp, key, cmp.Or(h.Status, registry.StatusActive), reg, text(h.LastIP, 45),
			h.HostID); err != nil {
			return nil, fmt.Errorf("sync host %s: %w", h.HostID, err)
		}
	}
	return byID, nil
}

// text returns s as valid UTF-8 of at most n bytes, or nil (NULL) if empty.
func text(s string, n int) any {
	if s == "" {
		return nil
	}
	return truncate(s, n)
}
