package spool

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"sync"

	"github.com/apache/arrow-go/v18/arrow/ipc"
	"github.com/apache/arrow-go/v18/arrow/memory"
	flatbuffers "github.com/google/flatbuffers/go"
	"github.com/klauspost/compress/zstd"
)

// decoders hold the zstd decoders of unpackMember, one per Verify running
// at a time. Arrow's reader makes a decoder (with its buffers) per member;
// these decode each buffer in place, into memory no larger than it declares.
var decoders = newDecoderPool()

func newDecoderPool() *sync.Pool {
	return &sync.Pool{New: func() any {
		d, err := zstd.NewReader(nil, zstd.WithDecoderConcurrency(1), zstd.WithDecoderMaxWindow(MaxZstdWindow),
			zstd.WithDecodeAllCapLimit(true))
		if err != nil {
			panic(err) // the options are constants
		}
		return d
	}}
}

// unpacked is a member's Arrow stream without compression, message by
// message, as Arrow's reader takes it ([ipc.MessageReader]).
type unpacked struct {
	msgs []*ipc.Message
	next int
}

func (u *unpacked) Message() (*ipc.Message, error) {
	if u.next == len(u.msgs) {
		return nil, io.EOF
	}
	u.next++
	return u.msgs[u.next-1], nil
}

func (u *unpacked) Retain() {}

func (u *unpacked) Release() {
	for _, m := range u.msgs {
		m.Release()
	}
	u.msgs = nil
}

// unpackMember decompresses every buffer of a member into the messages of
// the same stream without compression, for Arrow's reader. It checks what
// it reads itself, as strictly as scanStream (which Verify runs first): the
// framing, every buffer inside its body, each compressed buffer exactly one
// zstd frame within MaxZstdWindow that decodes to exactly the size it
// declares, and those sizes within lim.decoded (else ErrTooLarge). The schema
// message, checked as scanStream checks it, passes as it is; a batch's
// rows and field nodes must be within lim; the end-of-stream marker must
// end data.
func unpackMember(data []byte, lim *limits) (*unpacked, error) {
	budget := lim.decoded
	dec := decoders.Get().(*zstd.Decoder)
	defer decoders.Put(dec)
	u := &unpacked{}
	var (
		m  batchMessage
		fb *flatbuffers.Builder
	)
	for pos, n := 0, 0; ; n++ {
		if len(data)-pos < 8 {
			return nil, fmt.Errorf("message %d at byte %d: truncated", n, pos)
		}
		if binary.LittleEndian.Uint32(data[pos:]) != ipcContinuation {
			return nil, fmt.Errorf("message %d at byte %d: no continuation marker", n, pos)
		}
		metaLen := int(binary.LittleEndian.Uint32(data[pos+4:]))
		pos += 8
		if metaLen == 0 {
			if pos != len(data) {
				return nil, fmt.Errorf("%d bytes after the end-of-stream marker", len(data)-pos)
			}
			return u, nil
		}
		if metaLen > 1<<20 || metaLen > len(data)-pos {
			return nil, fmt.Errorf("message %d: metadata length %d exceeds the member", n, metaLen)
		}
		meta := flatbuf(data[pos : pos+metaLen])
		pos += metaLen
		msg, err := meta.root()
		if err != nil {
			return nil, fmt.Errorf("message %d: %w", n, err)
		}
		typ, err1 := meta.scalar(msg, 1, 1)
		bodyLen, err2 := meta.scalar(msg, 3, 8)
		if err := errors.Join(err1, err2); err != nil {
			return nil, fmt.Errorf("message %d: %w", n, err)
		}
		if bodyLen < 0 || bodyLen > int64(len(data)-pos) {
			return nil, fmt.Errorf("message %d: body length %d exceeds the member", n, bodyLen)
		}
		body := data[pos : pos+int(bodyLen)]
		pos += int(bodyLen)
		if typ == ipcSchema { // Arrow's schema decoder trusts its flatbuffer
			schema, err := meta.table(msg, 2)
			if err == nil {
				err = errors.Join(checkSchemaFB(meta, schema), checkKeyValues(meta, msg, 4))
			}
			if err != nil {
				return nil, fmt.Errorf("schema: %w", err)
			}
			u.msgs = append(u.msgs, ipc.NewMessage(memory.NewBufferBytes(meta), memory.NewBufferBytes(nil)))
			continue
		}
		if err := parseBatch(meta, msg, &m, true); err != nil {
			return nil, fmt.Errorf("message %d: %w", n, err)
		}
		if m.length < 0 || m.length > lim.rows {
			return nil, fmt.Errorf("%w: message %d: batch of %d rows, limit %d", ErrTooLarge, n, m.length, lim.rows)
		}
		for j := 0; j < len(m.nodes); j += 2 {
			if nl, nulls := m.nodes[j], m.nodes[j+1]; nl != m.length || nulls < 0 || nulls > nl {
				return nil, fmt.Errorf("message %d: field node %d: length %d, nulls %d in a batch of %d", n, j/2, nl, nulls, m.length)
			}
		}
		out, err := unpackBody(dec, &m, body, &budget)
		if err != nil {
			return nil, fmt.Errorf("message %d: %w", n, err)
		}
		if fb == nil {
			fb = flatbuffers.NewBuilder(1024)
		}
		plain := bytes.Clone(m.build(fb, false))
		u.msgs = append(u.msgs, ipc.NewMessage(memory.NewBufferBytes(plain), memory.NewBufferBytes(out)))
	}
}

// unpackBody decompresses the buffers of m, which lie in body, into one new
// body, and points m's buffers and body length at it.
func unpackBody(dec *zstd.Decoder, m *batchMessage, body []byte, budget *int64) ([]byte, error) {
	var total int64
	for j := 0; j < len(m.bufs); j += 2 {
		off, n := m.bufs[j], m.bufs[j+1]
		if off < 0 || n < 0 || off > int64(len(body)) || n > int64(len(body))-off {
			return nil, fmt.Errorf("buffer %d (offset %d, length %d) outside a body of %d bytes", j/2, off, n, len(body))
		}
		if n == 0 {
			continue
		}
		if n < 8 {
			return nil, fmt.Errorf("buffer %d: %d bytes, no size prefix", j/2, n)
		}
		buf := body[off : off+n]
		size := int64(binary.LittleEndian.Uint64(buf))
		if size == -1 {
			size = n - 8
		} else if err := checkZstdFrame(buf[8:], size); err != nil {
			return nil, fmt.Errorf("buffer %d: %w", j/2, err)
		}
		if size < 0 || size > *budget {
			return nil, fmt.Errorf("%w: buffer %d decompresses to %d bytes, %d left of the decoded-size limit", ErrTooLarge, j/2, size, *budget)
		}
		*budget -= size
		total += (size + 7) &^ 7
	}
	out := make([]byte, total)
	var o int64
	for j := 0; j < len(m.bufs); j += 2 {
		off, n := m.bufs[j], m.bufs[j+1]
		m.bufs[j], m.bufs[j+1] = o, 0
		if n == 0 {
			continue
		}
		buf := body[off : off+n]
		size := int64(binary.LittleEndian.Uint64(buf))
		if size == -1 {
			size = int64(copy(out[o:], buf[8:]))
		} else {
			dst := out[o : o : o+size]
			got, err := dec.DecodeAll(buf[8:], dst)
			if err != nil {
				return nil, fmt.Errorf("buffer %d: zstd: %v", j/2, err)
			}
			if int64(len(got)) != size {
				return nil, fmt.Errorf("buffer %d decompresses to %d bytes, declares %d", j/2, len(got), size)
			}
			if size > 0 && &got[0] != &out[o] {
				copy(out[o:], got)
			}
		}
		m.bufs[j+1] = size
		o += (size + 7) &^ 7
	}
	m.body = total
	return out, nil
}
