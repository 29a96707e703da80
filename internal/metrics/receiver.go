package metrics

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/pofr/pofr/receiver"
)

// Receiver is a prometheus.Collector over the SSH receiver's counters.
type Receiver struct{ srv *receiver.Server }

// NewReceiver returns the collector of srv's counters.
func NewReceiver(srv *receiver.Server) *Receiver { return &Receiver{srv: srv} }

// The receiver's metrics; docs/operations.md lists them.
var (
	recvConns    = desc("pofr_receiver_connections_total", "SSH connections accepted by the receiver.")
	recvRefused  = desc("pofr_receiver_refusals_total", "Connections closed at once by a connection limit (max-conns, max-startups, per address, per host).")
	recvAuthFail = desc("pofr_receiver_auth_failures_total", "Failed authentication attempts.")
	recvSegments = desc("pofr_segments_received_total", "Segment files delivered into an inbox (renamed to their final name).")
	recvBytes    = desc("pofr_receiver_bytes_total", "Bytes written into the inboxes.")
	recvRegs     = desc("pofr_receiver_registrations_total", "Registration requests answered.")
)

// Describe implements prometheus.Collector.
func (r *Receiver) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{recvConns, recvRefused, recvAuthFail, recvSegments, recvBytes, recvRegs} {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (r *Receiver) Collect(ch chan<- prometheus.Metric) {
	s := r.srv.Stats()
	for _, m := range []struct {
		d *prometheus.Desc
		v int64
	}{{recvConns, s.Conns}, {recvRefused, s.Refused}, {recvAuthFail, s.AuthFailures}, {recvSegments, s.Uploads}, {recvBytes, s.Bytes}, {recvRegs, s.Registered}} {
		ch <- prometheus.MustNewConstMetric(m.d, prometheus.CounterValue, float64(m.v))
	}
}
