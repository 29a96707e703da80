package fanotify

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// ErrFanotifyCorrupt reports a fanotify event buffer that does not follow the
// kernel's layout (a length out of bounds, an unknown metadata version). The
// decoder never trusts a length it has not checked against the buffer.
var ErrFanotifyCorrupt = errors.New("collector: corrupt fanotify event buffer")

// fanotify ABI, from include/uapi/linux/fanotify.h. The values are spelled out
// here so that the pure decoder builds on every platform.
const (
	fanMetadataVersion = 3  // FANOTIFY_METADATA_VERSION
	fanMetadataLen     = 24 // sizeof(struct fanotify_event_metadata)
	fanInfoHdrLen      = 4  // sizeof(struct fanotify_event_info_header)

	fanInfoFID         = 1  // FAN_EVENT_INFO_TYPE_FID
	fanInfoDFIDName    = 2  // FAN_EVENT_INFO_TYPE_DFID_NAME
	fanInfoDFID        = 3  // FAN_EVENT_INFO_TYPE_DFID
	fanInfoPIDFD       = 4  // FAN_EVENT_INFO_TYPE_PIDFD
	fanInfoOldDFIDName = 10 // FAN_EVENT_INFO_TYPE_OLD_DFID_NAME
	fanInfoNewDFIDName = 12 // FAN_EVENT_INFO_TYPE_NEW_DFID_NAME

	fanOpen       = 0x20       // FAN_OPEN
	fanCloseWrite = 0x8        // FAN_CLOSE_WRITE
	fanMovedFrom  = 0x40       // FAN_MOVED_FROM
	fanMovedTo    = 0x80       // FAN_MOVED_TO
	fanCreate     = 0x100      // FAN_CREATE
	fanDelete     = 0x200      // FAN_DELETE
	fanOpenExec   = 0x1000     // FAN_OPEN_EXEC
	fanQOverflow  = 0x4000     // FAN_Q_OVERFLOW
	fanRename     = 0x10000000 // FAN_RENAME
	fanOnDir      = 0x40000000 // FAN_ONDIR
)

// fanFID is a file identifier from an info record: the file system id and a
// file_handle (type and opaque bytes) that open_by_handle_at accepts.
type fanFID struct {
	FSID   [2]int32
	Type   int32
	Handle []byte // aliases the event buffer
}

// valid reports whether the record was present in the event.
func (f *fanFID) valid() bool { return f.Handle != nil }

// fanDirName is a directory identifier and a name within it (the DFID_NAME,
// OLD_DFID_NAME and NEW_DFID_NAME records).
type fanDirName struct {
	Dir  fanFID
	Name []byte // exact bytes, without the terminating NUL; aliases the buffer
}

// fanEvent is one decoded fanotify event. Byte slices alias the buffer given
// to decodeFanotify and are valid only until it is reused.
type fanEvent struct {
	Mask uint64
	FD   int32 // FAN_NOFD (-1) in FID report modes
	PID  int32 // thread group id of the process that caused the event

	FID    fanFID     // the object itself (FAN_REPORT_FID)
	DFID   fanFID     // its directory, without a name (FAN_EVENT_INFO_TYPE_DFID)
	Name   fanDirName // directory + name (FAN_REPORT_DFID_NAME)
	Old    fanDirName // FAN_RENAME: where it was
	New    fanDirName // FAN_RENAME: where it is now
	HasPID bool       // a PIDFD record was present
	PIDFD  int32
}

// decodeFanotify walks a buffer returned by read(2) on a fanotify descriptor
// and calls fn for every event in order. It checks every length against the
// buffer and returns ErrFanotifyCorrupt (wrapped with the offset) on the first
// malformed event; events before it have been delivered. Unknown info record
// types are skipped. It never touches a descriptor, so tests and the fuzzer
// feed it buffers captured from the kernel (testdata/). ev is where each
// event is decoded, the caller's: a local one would escape to the heap
// (one allocation per read).
func decodeFanotify(b []byte, ev *fanEvent, fn func(*fanEvent)) error {
	for off := 0; off < len(b); {
		rest := b[off:]
		if len(rest) < fanMetadataLen {
			return fmt.Errorf("%w: %d trailing bytes at offset %d", ErrFanotifyCorrupt, len(rest), off)
		}
		evLen := int(binary.NativeEndian.Uint32(rest[0:]))
		vers := rest[4]
		metaLen := int(binary.NativeEndian.Uint16(rest[6:]))
		switch {
		case vers != fanMetadataVersion:
			return fmt.Errorf("%w: metadata version %d at offset %d, want %d", ErrFanotifyCorrupt, vers, off, fanMetadataVersion)
		case metaLen < fanMetadataLen || metaLen > evLen:
			return fmt.Errorf("%w: metadata_len %d at offset %d", ErrFanotifyCorrupt, metaLen, off)
		case evLen > len(rest):
			return fmt.Errorf("%w: event_len %d at offset %d exceeds the %d bytes left", ErrFanotifyCorrupt, evLen, off, len(rest))
		}
		*ev = fanEvent{
			Mask: binary.NativeEndian.Uint64(rest[8:]),
			FD:   int32(binary.NativeEndian.Uint32(rest[16:])),
			PID:  int32(binary.NativeEndian.Uint32(rest[20:])),
		}
		if err := decodeFanInfo(rest[metaLen:evLen], ev); err != nil {
			return fmt.Errorf("%w at offset %d", err, off)
		}
		fn(ev)
		off += evLen
	}
	return nil
}

// decodeFanInfo parses the info records that follow the metadata of one event.
func decodeFanInfo(b []byte, ev *fanEvent) error {
	for len(b) > 0 {
		if len(b) < fanInfoHdrLen {
			return fmt.Errorf("%w: %d bytes of info header", ErrFanotifyCorrupt, len(b))
		}
		typ := b[0]
		n := int(binary.NativeEndian.Uint16(b[2:]))
		if n < fanInfoHdrLen || n > len(b) {
			return fmt.Errorf("%w: info record type %d of length %d, %d bytes left", ErrFanotifyCorrupt, typ, n, len(b))
		}
		rec := b[fanInfoHdrLen:n]
		var err error
		switch typ {
		case fanInfoFID:
			ev.FID, _, err = decodeFanFID(rec, false)
		case fanInfoDFID:
			ev.DFID, _, err = decodeFanFID(rec, false)
		case fanInfoDFIDName:
			ev.Name.Dir, ev.Name.Name, err = decodeFanFID(rec, true)
		case fanInfoOldDFIDName:
			ev.Old.Dir, ev.Old.Name, err = decodeFanFID(rec, true)
		case fanInfoNewDFIDName:
			ev.New.Dir, ev.New.Name, err = decodeFanFID(rec, true)
		case fanInfoPIDFD:
			if len(rec) < 4 {
				return fmt.Errorf("%w: pidfd record of %d bytes", ErrFanotifyCorrupt, len(rec))
			}
			ev.HasPID, ev.PIDFD = true, int32(binary.NativeEndian.Uint32(rec))
		}
		if err != nil {
			return err
		}
		b = b[n:]
	}
	return nil
}

// decodeFanFID parses the body of a fid record: __kernel_fsid_t, then struct
// file_handle {handle_bytes, handle_type, f_handle[handle_bytes]}, then, for
// the *_NAME types, a NUL-terminated name (padding after the NUL).
func decodeFanFID(b []byte, withName bool) (fanFID, []byte, error) {
	const fixed = 8 + 4 + 4
	if len(b) < fixed {
		return fanFID{}, nil, fmt.Errorf("%w: fid record of %d bytes", ErrFanotifyCorrupt, len(b))
	}
	f := fanFID{
		FSID: [2]int32{int32(binary.NativeEndian.Uint32(b[0:])), int32(binary.NativeEndian.Uint32(b[4:]))},
		Type: int32(binary.NativeEndian.Uint32(b[12:])),
	}
	hb := binary.NativeEndian.Uint32(b[8:])
	if uint64(hb) > uint64(len(b)-fixed) {
		return fanFID{}, nil, fmt.Errorf("%w: handle_bytes %d in a fid record of %d bytes", ErrFanotifyCorrupt, hb, len(b))
	}
	f.Handle = b[fixed : fixed+int(hb) : fixed+int(hb)]
	if !withName {
		return f, nil, nil
	}
	rest := b[fixed+int(hb):]
	for i, c := range rest {
		if c == 0 {
			return f, rest[:i:i], nil
		}
	}
	return fanFID{}, nil, fmt.Errorf("%w: name without NUL terminator", ErrFanotifyCorrupt)
}

// handleInode extracts the inode number from the file handle formats whose
// layout is known: FILEID_INO32_GEN (type 1) as written by the generic
// export_encode_fh (ext2/3/4 and most block file systems: 8 bytes, ino32 then
// generation) and by tmpfs (12 bytes: generation, ino low, ino high). Other
// formats return false; the caller then leaves the inode null.
func handleInode(f *fanFID) (uint64, bool) {
	if f.Type != 1 {
		return 0, false
	}
	switch len(f.Handle) {
	case 8:
		return uint64(binary.NativeEndian.Uint32(f.Handle)), true
	case 12:
		return uint64(binary.NativeEndian.Uint32(f.Handle[4:])) | uint64(binary.NativeEndian.Uint32(f.Handle[8:]))<<32, true
	}
	return 0, false
}
