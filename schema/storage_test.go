package schema

import (
	"strings"
	"testing"
)

func TestStorageWarnings(t *testing.T) {
	for _, tc := range []struct {
		algo     string
		pageSize int
		want     []string
	}{
		{"zlib", 16384, nil},
		{"lz4", 65536, nil},
		{"none", 16384, []string{"innodb_compression_algorithm is none"}},
		{"zlib", 4096, []string{"innodb_page_size is 4096"}},
		{"none", 4096, []string{"innodb_compression_algorithm is none", "innodb_page_size is 4096"}},
	} {
		got := storageWarnings(tc.algo, tc.pageSize)
		if len(got) != len(tc.want) {
			t.Errorf("storageWarnings(%q, %d) = %q, want %d warnings", tc.algo, tc.pageSize, got, len(tc.want))
			continue
		}
		for i, w := range tc.want {
			if !strings.HasPrefix(got[i], w) {
				t.Errorf("storageWarnings(%q, %d)[%d] = %q, want it to start %q", tc.algo, tc.pageSize, i, got[i], w)
			}
		}
	}
}
