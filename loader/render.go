package loader

import (
	"bytes"
	"crypto/ed25519"

	"github.com/pofr/pofr/spool"
)

// Rendered is one table of a verified segment as a load pass streams it into
// LOAD DATA: the text (in the Escaped encoding) and the statement that reads
// it.
type Rendered struct {
	Table string
	Text  []byte
	// Statement returns the LOAD DATA statement that reads Text from the
	// handler 'Reader::reader' as the rows of segment segmentID.
	Statement func(reader string, segmentID uint64) string
}

// Render verifies the segment file at path (signed by pub for hostID) and
// renders every table that has rows as a load pass would. It is the seam
// for the benchmark ceiling (bench.MeasureLoad): the same text and
// statements, loaded without the loader.
func Render(path string, pub ed25519.PublicKey, hostID string) ([]Rendered, error) {
	seg, err := openSegment(path, pub, hostID, spool.DefaultMaxSize)
	if err != nil {
		return nil, err
	}
	defer seg.release()
	m := seg.manifest
	var out []Rendered
	for _, ti := range tableInfos {
		if m.TableRows(ti.table) == 0 {
			continue
		}
		rec, err := seg.record(ti.table)
		if err != nil {
			return nil, err
		}
		r, err := newTSVReader(ti, rec, Escaped)
		if err != nil {
			return nil, err
		}
		var buf bytes.Buffer
		if _, err := r.WriteTo(&buf); err != nil {
			return nil, err
		}
		schema := rec.Schema()
		c := segConsts{HostID: m.HostID, BootID: m.BootID, TZOffset: m.TZOffset}
		out = append(out, Rendered{Table: ti.table, Text: buf.Bytes(), Statement: func(reader string, segmentID uint64) string {
			c := c
			c.SegmentID = segmentID
			return loadStatement(ti, schema, Escaped, reader, c)
		}})
	}
	return out, nil
}
