package spool

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/ipc"
	flatbuffers "github.com/google/flatbuffers/go"
	"github.com/klauspost/compress/zstd"
)

// Arrow IPC values (Message.fbs, Schema.fbs) that the member writer and the
// unpacker read and write.
const (
	ipcContinuation = 0xFFFFFFFF
	ipcMetadataV5   = 4
	ipcSchema       = 1
	ipcDictionary   = 2
	ipcRecordBatch  = 3
	ipcCodecZSTD    = 1
	// memberZstdWindow is the window of the member writer's zstd frames,
	// within MaxZstdWindow.
	memberZstdWindow = 1 << 20
	// keepScratch bounds the scratch buffers a memberEncoder keeps from one
	// seal to the next.
	keepScratch = 4 << 20
)

// batchMessage is what the member writer and the unpacker take from, and
// put into, the metadata of a dictionary or record batch message.
type batchMessage struct {
	typ    int64 // ipcDictionary or ipcRecordBatch
	dictID int64
	length int64
	nodes  []int64 // length, null count of each field node
	bufs   []int64 // offset, length of each buffer
	custom []string
	body   int64
}

// parseBatch reads the dictionary or record batch message at msg of fb
// into m, with every position bounds-checked. compressed says whether the
// batch must declare ZSTD buffer compression or must declare none. Only
// what the unpacker and writer carry over is accepted: no dictionary
// deltas, no variadic buffers.
func parseBatch(fb flatbuf, msg int, m *batchMessage, compressed bool) error {
	version, err := fb.scalar(msg, 0, 2)
	if err != nil || version != ipcMetadataV5 {
		return fmt.Errorf("metadata version %d, want V5", version)
	}
	if m.typ, err = fb.scalar(msg, 1, 1); err != nil {
		return err
	}
	if m.body, err = fb.scalar(msg, 3, 8); err != nil {
		return err
	}
	if m.body < 0 {
		return fmt.Errorf("body length %d", m.body)
	}
	m.custom = m.custom[:0]
	kvs, nkv, err := fb.vector(msg, 4, 4)
	if err != nil {
		return err
	}
	for i := 0; i < nkv; i++ {
		kv, err := fb.indirect(kvs + 4*i)
		if err != nil {
			return err
		}
		if fb.str(kv, 0) != nil || fb.str(kv, 1) != nil {
			return errFB
		}
		m.custom = append(m.custom, fb.getStr(kv, 0), fb.getStr(kv, 1))
	}
	rb, err := fb.table(msg, 2)
	if err != nil {
		return err
	}
	m.dictID = 0
	switch m.typ {
	case ipcRecordBatch:
	case ipcDictionary:
		dict := rb
		if m.dictID, err = fb.scalar(dict, 0, 8); err != nil {
			return err
		}
		if delta, err := fb.scalar(dict, 2, 1); err != nil || delta != 0 {
			return errors.New("dictionary delta")
		}
		if rb, err = fb.table(dict, 1); err != nil {
			return err
		}
	default:
		return fmt.Errorf("message type %d is not a batch", m.typ)
	}
	if m.length, err = fb.scalar(rb, 0, 8); err != nil {
		return err
	}
	if m.nodes, err = fb.int64s(rb, 1, m.nodes[:0]); err != nil {
		return err
	}
	if m.bufs, err = fb.int64s(rb, 2, m.bufs[:0]); err != nil {
		return err
	}
	p, err := fb.field(rb, 3)
	switch {
	case err != nil:
		return err
	case p == 0 && compressed:
		return errors.New("batch is not compressed")
	case p != 0 && !compressed:
		return errors.New("batch is compressed")
	case p != 0:
		comp, err := fb.table(rb, 3)
		if err != nil {
			return err
		}
		codec, err1 := fb.scalar(comp, 0, 1)
		method, err2 := fb.scalar(comp, 1, 1)
		if err1 != nil || err2 != nil || codec != ipcCodecZSTD || method != 0 {
			return fmt.Errorf("compression codec %d method %d, want ZSTD per buffer", codec, method)
		}
	}
	if _, n, err := fb.vector(rb, 4, 8); err != nil || n != 0 {
		return errors.New("variadic buffer counts")
	}
	return nil
}

// int64s appends the vector of 16-byte structs in field i of table t to
// dst as pairs of little-endian int64s.
func (f flatbuf) int64s(t, i int, dst []int64) ([]int64, error) {
	start, n, err := f.vector(t, i, 16)
	if err != nil {
		return dst, err
	}
	for j := 0; j < 2*n; j++ {
		dst = append(dst, int64(binary.LittleEndian.Uint64(f[start+8*j:])))
	}
	return dst, nil
}

// build encodes m's metadata as Arrow's IPC writer does (the same tables,
// in the same order, so the same bytes), declaring ZSTD buffer compression
// if compressed, and returns it; the bytes belong to b.
func (m *batchMessage) build(b *flatbuffers.Builder, compressed bool) []byte {
	b.Reset()
	pairs := func(v []int64) flatbuffers.UOffsetT {
		b.StartVector(16, len(v)/2, 8)
		for j := len(v) - 2; j >= 0; j -= 2 {
			b.Prep(8, 16)
			b.PrependInt64(v[j+1])
			b.PrependInt64(v[j])
		}
		return b.EndVector(len(v) / 2)
	}
	nodes := pairs(m.nodes)
	bufs := pairs(m.bufs)
	var comp flatbuffers.UOffsetT
	if compressed {
		b.StartObject(2)
		b.PrependInt8Slot(0, ipcCodecZSTD, 0)
		b.PrependInt8Slot(1, 0, 0) // BUFFER
		comp = b.EndObject()
	}
	b.StartObject(5)
	b.PrependInt64Slot(0, m.length, 0)
	b.PrependUOffsetTSlot(1, nodes, 0)
	b.PrependUOffsetTSlot(2, bufs, 0)
	if compressed {
		b.PrependUOffsetTSlot(3, comp, 0)
	}
	hdr := b.EndObject()
	if m.typ == ipcDictionary {
		b.StartObject(3)
		b.PrependInt64Slot(0, m.dictID, 0)
		b.PrependUOffsetTSlot(1, hdr, 0)
		b.PrependBoolSlot(2, false, false)
		hdr = b.EndObject()
	}
	var custom flatbuffers.UOffsetT
	if len(m.custom) > 0 {
		kvs := make([]flatbuffers.UOffsetT, len(m.custom)/2)
		for j := range kvs {
			k, v := b.CreateString(m.custom[2*j]), b.CreateString(m.custom[2*j+1])
			b.StartObject(2)
			b.PrependUOffsetTSlot(0, k, 0)
			b.PrependUOffsetTSlot(1, v, 0)
			kvs[j] = b.EndObject()
		}
		b.StartVector(4, len(kvs), 4)
		for j := len(kvs) - 1; j >= 0; j-- {
			b.PrependUOffsetT(kvs[j])
		}
		custom = b.EndVector(len(kvs))
	}
	b.StartObject(5)
	b.PrependInt16Slot(0, ipcMetadataV5, 0)
	b.PrependByteSlot(1, byte(m.typ), 0)
	b.PrependUOffsetTSlot(2, hdr, 0)
	b.PrependInt64Slot(3, m.body, 0)
	b.PrependUOffsetTSlot(4, custom, 0)
	b.Finish(b.EndObject())
	return b.FinishedBytes()
}

// appendMessage appends an IPC message to dst: continuation marker,
// metadata length, metadata padded to 8 bytes, body.
func appendMessage(dst, meta, body []byte) []byte {
	padded := (len(meta) + 7) &^ 7
	dst = binary.LittleEndian.AppendUint32(dst, ipcContinuation)
	dst = binary.LittleEndian.AppendUint32(dst, uint32(padded))
	dst = append(dst, meta...)
	dst = append(dst, zeros[:padded-len(meta)]...)
	return append(dst, body...)
}

var zeros [8]byte

// Packer states: what the next bytes from Arrow's writer are.
const (
	packHeader = iota // continuation marker and metadata length
	packMeta          // metadata
	packBody          // a batch's body
	packDone          // after the end-of-stream marker
)

// memberEncoder writes the Arrow members of segments with ZSTD buffer
// compression through one zstd encoder kept for the Writer's life. Arrow's
// IPC writer makes an encoder, with its tables and history, per stream, and
// that was most of what a seal allocated; its codec option is unexported.
// So Arrow's writer writes each member uncompressed into the memberEncoder
// (an io.Writer), which compresses each body buffer as it passes and
// rewrites each batch's metadata as Arrow's writer would with compression:
// the same Arrow IPC stream, an 8-byte uncompressed length before each
// compressed buffer. It is not safe for concurrent use; the Writer seals
// under sealMu.
type memberEncoder struct {
	zw *zstd.Encoder
	fb *flatbuffers.Builder
	// out holds the members of the segment being encoded, back to back;
	// the member slices stay valid until the next segment's reset.
	out []byte

	state   int
	hdr     [8]byte
	nhdr    int
	meta    []byte
	metaLen int
	msg     batchMessage
	bufs    []int64 // the uncompressed buffers (offset, length) of msg
	body    []byte  // the compressed body of msg so far
	bodyPos int64   // bytes of the uncompressed body received
	next    int     // index of the buffer being received
	part    []byte  // a buffer that arrives in pieces
}

func newMemberEncoder() (*memberEncoder, error) {
	zw, err := zstd.NewWriter(nil, zstd.WithEncoderConcurrency(1), zstd.WithWindowSize(memberZstdWindow),
		zstd.WithLowerEncoderMem(true))
	if err != nil {
		return nil, err
	}
	return &memberEncoder{zw: zw, fb: flatbuffers.NewBuilder(1024)}, nil
}

// reset starts a new segment: the previous members' bytes may be reused.
func (e *memberEncoder) reset() {
	if cap(e.out) > keepScratch {
		e.out = nil
	}
	if cap(e.body) > keepScratch {
		e.body = nil
	}
	e.out, e.body, e.part = e.out[:0], e.body[:0], nil
}

// encode writes rec as one Arrow IPC stream: schema, dictionaries, one
// record batch, end-of-stream, with ZSTD buffer compression.
func (e *memberEncoder) encode(schema *arrow.Schema, rec arrow.RecordBatch) ([]byte, error) {
	start := len(e.out)
	e.state, e.nhdr = packHeader, 0
	w := ipc.NewWriter(e, ipc.WithSchema(schema))
	if err := w.Write(rec); err != nil {
		w.Close()
		return nil, err
	}
	if err := w.Close(); err != nil {
		return nil, err
	}
	if e.state != packDone {
		return nil, errors.New("arrow stream without end-of-stream marker")
	}
	return e.out[start:len(e.out):len(e.out)], nil
}

// Write takes the next bytes of the uncompressed stream from Arrow's writer.
func (e *memberEncoder) Write(p []byte) (int, error) {
	n := len(p)
	for len(p) > 0 {
		var err error
		switch e.state {
		case packHeader:
			k := copy(e.hdr[e.nhdr:], p)
			e.nhdr += k
			p = p[k:]
			if e.nhdr == len(e.hdr) {
				err = e.header()
			}
		case packMeta:
			k := min(e.metaLen-len(e.meta), len(p))
			e.meta = append(e.meta, p[:k]...)
			p = p[k:]
			if len(e.meta) == e.metaLen {
				err = e.metadata()
			}
		case packBody:
			p, err = e.bodyBytes(p)
		default:
			err = errors.New("bytes after the end-of-stream marker")
		}
		if err != nil {
			return n - len(p), fmt.Errorf("spool: member writer: %w", err)
		}
	}
	return n, nil
}

func (e *memberEncoder) header() error {
	e.nhdr = 0
	if binary.LittleEndian.Uint32(e.hdr[:]) != ipcContinuation {
		return errors.New("no continuation marker")
	}
	e.metaLen = int(binary.LittleEndian.Uint32(e.hdr[4:]))
	if e.metaLen == 0 {
		e.out = append(e.out, e.hdr[:]...)
		e.state = packDone
		return nil
	}
	if e.metaLen > 1<<20 {
		return fmt.Errorf("metadata of %d bytes", e.metaLen)
	}
	e.meta = e.meta[:0]
	e.state = packMeta
	return nil
}

// metadata handles a message's metadata: a schema passes through, a
// batch's buffers are compressed as its body arrives.
func (e *memberEncoder) metadata() error {
	fb := flatbuf(e.meta)
	msg, err := fb.root()
	if err != nil {
		return err
	}
	typ, err := fb.scalar(msg, 1, 1)
	if err != nil {
		return err
	}
	if typ == ipcSchema {
		if body, err := fb.scalar(msg, 3, 8); err != nil || body != 0 {
			return errors.New("schema message with a body")
		}
		e.out = append(append(e.out, e.hdr[:]...), e.meta...)
		e.state = packHeader
		return nil
	}
	if err := parseBatch(fb, msg, &e.msg, false); err != nil {
		return err
	}
	e.bufs = append(e.bufs[:0], e.msg.bufs...)
	end := int64(0)
	for j := 0; j < len(e.bufs); j += 2 {
		off, n := e.bufs[j], e.bufs[j+1]
		if off < end || n < 0 || n > e.msg.body-off {
			return fmt.Errorf("buffer %d (offset %d, length %d) out of order or outside the body", j/2, off, n)
		}
		end = off + n
	}
	e.body, e.part, e.bodyPos, e.next = e.body[:0], e.part[:0], 0, 0
	e.state = packBody
	return e.advance()
}

// bodyBytes takes body bytes of the current batch and returns the rest of p.
func (e *memberEncoder) bodyBytes(p []byte) ([]byte, error) {
	for len(p) > 0 && e.state == packBody {
		var k int64
		if e.next == len(e.bufs)/2 { // padding after the last buffer
			k = min(int64(len(p)), e.msg.body-e.bodyPos)
		} else if off, n := e.bufs[2*e.next], e.bufs[2*e.next+1]; e.bodyPos < off { // padding
			k = min(int64(len(p)), off-e.bodyPos)
		} else if need := n - int64(len(e.part)); len(e.part) == 0 && int64(len(p)) >= need {
			e.compress(p[:need]) // the common case: Arrow writes each buffer whole
			k = need
		} else {
			k = min(int64(len(p)), need)
			e.part = append(e.part, p[:k]...)
			if int64(len(e.part)) == n {
				e.compress(e.part)
				e.part = e.part[:0]
			}
		}
		p = p[k:]
		e.bodyPos += k
		if err := e.advance(); err != nil {
			return p, err
		}
	}
	return p, nil
}

// advance passes the empty buffers that start where the body has arrived,
// and finishes the message once all of it has.
func (e *memberEncoder) advance() error {
	for e.next < len(e.bufs)/2 && e.bufs[2*e.next+1] == 0 && e.bufs[2*e.next] <= e.bodyPos {
		e.compress(nil)
	}
	if e.bodyPos < e.msg.body || e.next < len(e.bufs)/2 {
		return nil
	}
	e.msg.body = int64(len(e.body))
	e.out = appendMessage(e.out, e.msg.build(e.fb, true), e.body)
	e.state = packHeader
	return nil
}

// compress appends buffer e.next, src, to the compressed body as Arrow's
// writer does: empty stays empty; otherwise its length, one zstd frame,
// and zeros to a multiple of 8 bytes.
func (e *memberEncoder) compress(src []byte) {
	off := len(e.body)
	if len(src) > 0 {
		e.body = binary.LittleEndian.AppendUint64(e.body, uint64(len(src)))
		e.body = e.zw.EncodeAll(src, e.body)
	}
	e.msg.bufs[2*e.next], e.msg.bufs[2*e.next+1] = int64(off), int64(len(e.body)-off)
	e.body = append(e.body, zeros[:(8-len(e.body)%8)%8]...)
	e.next++
}
