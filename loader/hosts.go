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
	hosts, err := registry.List(l.opt.StateDir)
	if err != nil {
		return nil, err
	}
	byID := make(map[string]*registry.Host, len(hosts))
	for _, h := range hosts {
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
		if _, err := l.db.ExecContext(ctx, `INSERT INTO hosts (host_id, hostname, machine_id, dmi_uuid, ips, os, kernel, version,
			ssh_key_fp, signing_key, status, registered_at, last_ip, synced_at)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, UTC_TIMESTAMP(6))
			ON DUPLICATE KEY UPDATE hostname = VALUES(hostname), machine_id = VALUES(machine_id), dmi_uuid = VALUES(dmi_uuid),
			ips = VALUES(ips), os = VALUES(os), kernel = VALUES(kernel), version = VALUES(version), ssh_key_fp = VALUES(ssh_key_fp),
			signing_key = VALUES(signing_key), status = VALUES(status), registered_at = VALUES(registered_at),
			last_ip = VALUES(last_ip), synced_at = VALUES(synced_at)`,
			h.HostID, text(h.Hostname, 255), text(h.MachineID, 64), text(h.DMIUUID, 64), text(strings.Join(h.IPs, ","), 65535),
			text(h.OS, 255), text(h.Kernel, 255), text(h.Version, 64), fp, key, cmp.Or(h.Status, registry.StatusActive), reg, text(h.LastIP, 45)); err != nil {
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
