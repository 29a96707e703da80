package metrics

import (
	"database/sql"
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

// descName extracts the fully-qualified name of a Desc.
var descName = regexp.MustCompile(`fqName: "([a-z_]+)"`)

// TestMetricsDocumented: every metric the server exports is listed in
// docs/operations.md, and every pofr metric the shipped dashboard and
// alert rules use is one that pofr exports (server side here, collector
// side as documented).
func TestMetricsDocumented(t *testing.T) {
	root := filepath.Join("..", "..")
	doc, err := os.ReadFile(filepath.Join(root, "docs", "operations.md"))
	if err != nil {
		t.Fatal(err)
	}
	ch := make(chan *prometheus.Desc, 64)
	(&Ledger{db: new(sql.DB), stateDir: "state"}).Describe(ch) // both parts: the database's and the inboxes'
	(&Receiver{}).Describe(ch)
	close(ch)
	n := 0
	for d := range ch {
		m := descName.FindStringSubmatch(d.String())
		if m == nil {
			t.Fatalf("no name in %s", d)
		}
		n++
		if !strings.Contains(string(doc), "`"+m[1]+"`") {
			t.Errorf("docs/operations.md does not list %s", m[1])
		}
	}
	if n < 15 {
		t.Fatalf("only %d metrics described: the check is broken", n)
	}
	documented := map[string]bool{}
	for _, m := range regexp.MustCompile("`(pofr_[a-z_]+)`").FindAllStringSubmatch(string(doc), -1) {
		documented[m[1]] = true
	}
	dash, err := os.ReadFile(filepath.Join(root, "contrib", "grafana", "pofr-dashboard.json"))
	if err != nil {
		t.Fatal(err)
	}
	var v map[string]any
	if err := json.Unmarshal(dash, &v); err != nil {
		t.Fatalf("dashboard: %v", err)
	}
	rules, err := os.ReadFile(filepath.Join(root, "contrib", "prometheus", "pofr-alerts.yml"))
	if err != nil {
		t.Fatal(err)
	}
	for name, b := range map[string][]byte{"dashboard": dash, "alert rules": rules} {
		used := regexp.MustCompile(`\bpofr_[a-z_]+`).FindAllString(string(b), -1)
		if len(used) < 10 {
			t.Errorf("%s uses %d pofr metrics", name, len(used))
		}
		for _, u := range used {
			if !documented[u] {
				t.Errorf("%s uses %s, which is not a documented metric", name, u)
			}
		}
	}
}
