package testutil

import (
	"fmt"

	dto "github.com/prometheus/client_model/go"
)

// MetricSample returns the value of the counter or gauge sample of family
// name whose labels are exactly labels (name=value pairs), or -1 and an
// error if there is none.
func MetricSample(mfs map[string]*dto.MetricFamily, name string, labels ...string) (float64, error) {
	mf, ok := mfs[name]
	if !ok {
		return -1, fmt.Errorf("metric %s missing", name)
	}
	want := map[string]string{}
	for i := 0; i+1 < len(labels); i += 2 {
		want[labels[i]] = labels[i+1]
	}
	for _, m := range mf.GetMetric() {
		got := map[string]string{}
		for _, l := range m.GetLabel() {
			got[l.GetName()] = l.GetValue()
		}
		if fmt.Sprint(got) != fmt.Sprint(want) {
			continue
		}
		switch {
		case m.Counter != nil:
			return m.Counter.GetValue(), nil
		case m.Gauge != nil:
			return m.Gauge.GetValue(), nil
		}
	}
	return -1, fmt.Errorf("metric %s%v: no such sample", name, labels)
}
