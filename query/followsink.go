package query

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/pofr/pofr/internal/durable"
)

// FileSink is a FollowSink writing to a file that is rotated at a segment
// boundary once it reaches MaxBytes: path is renamed to path.N (N counting
// up from 1) and a new path begins. Its position is the generation N the
// active file will get and the offset in it, so a restart after a crash can
// truncate a partly written segment, also one that a rotation moved away.
type FileSink struct {
	path     string
	maxBytes int64
	f        *os.File
	bw       *bufio.Writer
	gen      int   // number the active file gets when rotated
	size     int64 // bytes written to the active file, buffered or not
}

// OpenFileSink opens (appends to) path; maxBytes 0 never rotates.
func OpenFileSink(path string, maxBytes int64) (*FileSink, error) {
	s := &FileSink{path: path, maxBytes: maxBytes, gen: 1}
	ents, err := os.ReadDir(filepath.Dir(path))
	if err != nil {
		return nil, fmt.Errorf("file sink: %w", err)
	}
	base := filepath.Base(path) + "."
	for _, e := range ents {
		if n, err := strconv.Atoi(strings.TrimPrefix(e.Name(), base)); err == nil && strings.HasPrefix(e.Name(), base) && n >= s.gen {
			s.gen = n + 1
		}
	}
	if err := s.open(); err != nil {
		return nil, err
	}
	return s, nil
}

func (s *FileSink) open() error {
	f, err := os.OpenFile(s.path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o640)
	if err != nil {
		return fmt.Errorf("file sink: %w", err)
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return fmt.Errorf("file sink: %w", err)
	}
	s.f, s.size = f, st.Size()
	s.bw = bufio.NewWriterSize(f, 64<<10)
	return nil
}

// Write buffers p.
func (s *FileSink) Write(p []byte) (int, error) {
	n, err := s.bw.Write(p)
	s.size += int64(n)
	return n, err
}

// Commit flushes and fsyncs, then rotates when the file is full.
func (s *FileSink) Commit() error {
	if err := s.bw.Flush(); err != nil {
		return fmt.Errorf("file sink: %w", err)
	}
	if err := s.f.Sync(); err != nil {
		return fmt.Errorf("file sink: %w", err)
	}
	if s.maxBytes <= 0 || s.size < s.maxBytes {
		return nil
	}
	if err := os.Rename(s.path, s.path+"."+strconv.Itoa(s.gen)); err != nil {
		return fmt.Errorf("file sink: rotate: %w", err)
	}
	s.f.Close()
	s.gen++
	if err := s.open(); err != nil {
		return err
	}
	return durable.SyncDir(filepath.Dir(s.path))
}

// Position is the active file's generation and its size.
func (s *FileSink) Position() (string, int64) { return strconv.Itoa(s.gen), s.size }

// Rewind drops what was written after position (name, offset): it
// truncates the active file, or, when a rotation happened after that
// position, undoes the rotation first.
func (s *FileSink) Rewind(name string, offset int64) error {
	gen, err := strconv.Atoi(name)
	if err != nil || gen < 1 || offset < 0 {
		return fmt.Errorf("file sink: bad position %q %d", name, offset)
	}
	if gen != s.gen && gen != s.gen-1 {
		return fmt.Errorf("file sink: position is of file generation %d, the active file is %d", gen, s.gen)
	}
	s.f.Close()
	s.bw.Reset(s.f) // drops the buffer; a write before a successful open fails
	if gen == s.gen-1 {
		// Rotated after the position: the new active file can hold nothing
		// committed yet (the cursor is written right after a rotation).
		if err := os.Rename(s.path+"."+name, s.path); err != nil {
			return fmt.Errorf("file sink: undo rotation: %w", err)
		}
		s.gen = gen
	}
	if err := os.Truncate(s.path, offset); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("file sink: %w", err)
	}
	if err := s.open(); err != nil {
		return err
	}
	if s.size != offset {
		return fmt.Errorf("file sink: %s is %d bytes, shorter than the cursor's %d", s.path, s.size, offset)
	}
	return durable.SyncDir(filepath.Dir(s.path))
}

// Close flushes and closes the file.
func (s *FileSink) Close() error {
	err := s.bw.Flush()
	if cerr := s.f.Close(); err == nil {
		err = cerr
	}
	return err
}

// StreamSink is a FollowSink on a stream (standard output, a pipe): Commit
// flushes. It can take back a partly written segment only while that is
// still in its buffer; otherwise Follow ends with the error, and the restart
// writes the segment again whole (the reader saw a part of it twice).
type StreamSink struct {
	w       io.Writer
	bw      *bufio.Writer
	pending int // bytes written since the last Commit
}

// NewStreamSink writes to w.
func NewStreamSink(w io.Writer) *StreamSink {
	return &StreamSink{w: w, bw: bufio.NewWriterSize(w, 64<<10)}
}

// Write buffers p.
func (s *StreamSink) Write(p []byte) (int, error) {
	n, err := s.bw.Write(p)
	s.pending += n
	return n, err
}

// Commit flushes.
func (s *StreamSink) Commit() error {
	if err := s.bw.Flush(); err != nil {
		return err
	}
	s.pending = 0
	return nil
}

// Position is empty: a stream has no position to return to.
func (s *StreamSink) Position() (string, int64) { return "", 0 }

// Rewind drops the bytes written since the last Commit if none of them left
// the buffer yet.
func (s *StreamSink) Rewind(name string, offset int64) error {
	if name != "" || offset != 0 || s.bw.Buffered() != s.pending {
		return errors.New("stream sink: cannot take back a partly written segment")
	}
	s.bw.Reset(s.w)
	s.pending = 0
	return nil
}
