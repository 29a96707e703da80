package testutil

import (
	"os"
	"path/filepath"
	"testing"
)

// File is one file read by ReadFiles.
type File struct {
	Path string
	Data []byte
}

// ReadFiles reads the files matching the glob pattern (captured frames,
// fixtures) in name order; it fails the test if one cannot be read.
func ReadFiles(t testing.TB, pattern string) []File {
	t.Helper()
	paths, err := filepath.Glob(pattern)
	if err != nil {
		t.Fatal(err)
	}
	out := make([]File, 0, len(paths))
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, File{p, b})
	}
	return out
}

// AddSeeds adds the files matching the glob pattern to f's seed corpus.
func AddSeeds(f *testing.F, pattern string) {
	f.Helper()
	for _, file := range ReadFiles(f, pattern) {
		f.Add(file.Data)
	}
}
