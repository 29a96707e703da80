package receiver

import (
	"fmt"

	"github.com/pofr/pofr/fleet"
	"github.com/pofr/pofr/internal/registry"
)

// AssignShard records in the registry the shard of host hostID under m's
// policy (fleet.Map.Assign: an admin's pin, else the open shard with the
// fewest active hosts) and returns it. A host that has a shard keeps it:
// its rows are there. It runs in reg.Update, so concurrent grants count
// each other.
func AssignShard(reg registry.Store, m *fleet.Map, hostID string) (shard string, err error) {
	err = reg.Update(func(reg registry.Store) error {
		shard, err = assignShard(reg, m, hostID)
		return err
	})
	return shard, err
}

func assignShard(reg registry.Store, m *fleet.Map, hostID string) (string, error) {
	h, err := reg.Host(hostID)
	if err != nil {
		return "", err
	}
	if h.Shard != "" {
		return h.Shard, nil
	}
	hosts, err := reg.Hosts()
	if err != nil {
		return "", err
	}
	load := map[string]int{}
	for _, o := range hosts {
		if o.Status == registry.StatusActive && o.Shard != "" {
			load[o.Shard]++
		}
	}
	s, err := m.Assign(hostID, load)
	if err != nil {
		return "", fmt.Errorf("assign host %s: %w", hostID, err)
	}
	h.Shard = s
	if err := reg.PutHost(h); err != nil {
		return "", err
	}
	return s, nil
}
