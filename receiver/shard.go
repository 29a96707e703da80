package receiver

import (
	"fmt"

	"github.com/pofr/pofr/fleet"
	"github.com/pofr/pofr/internal/registry"
	"github.com/pofr/pofr/internal/statedir"
)

// AssignShard records in the registry the shard of host hostID under m's
// policy (fleet.Map.Assign: an admin's pin, else the open shard with the
// fewest active hosts) and returns it. A host that has a shard keeps it:
// its rows are there. It takes the state lock, so concurrent grants count
// each other.
func AssignShard(state statedir.Dir, m *fleet.Map, hostID string) (string, error) {
	unlock, err := lockState(state)
	if err != nil {
		return "", err
	}
	defer unlock()
	h, err := registry.Load(state, hostID)
	if err != nil {
		return "", err
	}
	if h.Shard != "" {
		return h.Shard, nil
	}
	hosts, err := registry.List(state)
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
	if err := registry.Save(state, h); err != nil {
		return "", err
	}
	return s, nil
}
