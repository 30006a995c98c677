package ai

import (
	"bytes"
	"encoding/binary"
	"errors"
	"time"
)

// Ogg/Opus voice notes longer than a speech service takes in one call are
// cut into parts at page boundaries, without decoding: each part is a
// whole Ogg/Opus stream of its own (the original's two header packets,
// then a run of its audio pages, renumbered, granules rebased, checksums
// recomputed). The page format is RFC 3533's; Opus in Ogg is RFC 7845's.
//
// pion/webrtc's oggreader was considered: it returns a page's payload
// without its lacing values, and its writer builds pages from RTP
// packets, so a page carrying several Opus packets would not survive the
// round trip. Pages are copied here as they are.

// oggPage is one page of an Ogg stream.
type oggPage struct {
	flags   byte
	granule uint64
	serial  uint32
	lacing  []byte
	body    []byte
}

const (
	oggContinued = 0x01
	oggFirst     = 0x02
	oggLast      = 0x04
	// opusRate is the rate Opus granule positions count in, whatever the
	// input's rate.
	opusRate = 48000
)

var errNotOpus = errors.New("not an Ogg/Opus stream")

// oggCRC is the Ogg checksum table (CRC-32, polynomial 0x04c11db7, not
// reflected).
var oggCRC = func() (t [256]uint32) {
	for i := range t {
		r := uint32(i) << 24
		for range 8 {
			if r&0x80000000 != 0 {
				r = r<<1 ^ 0x04c11db7
			} else {
				r <<= 1
			}
		}
		t[i] = r
	}
	return t
}()

func oggChecksum(b []byte) uint32 {
	var c uint32
	for _, v := range b {
		c = c<<8 ^ oggCRC[byte(c>>24)^v]
	}
	return c
}

// readOggPages reads every page of a single-stream Ogg file, checking
// each page's checksum.
func readOggPages(data []byte) ([]oggPage, error) {
	var pages []oggPage
	for len(data) > 0 {
		if len(data) < 27 || string(data[:4]) != "OggS" || data[4] != 0 {
			return nil, errNotOpus
		}
		n := int(data[26])
		if len(data) < 27+n {
			return nil, errNotOpus
		}
		lacing := data[27 : 27+n]
		size := 0
		for _, l := range lacing {
			size += int(l)
		}
		end := 27 + n + size
		if len(data) < end {
			return nil, errNotOpus
		}
		raw := bytes.Clone(data[:end])
		want := binary.LittleEndian.Uint32(raw[22:26])
		clear(raw[22:26])
		if oggChecksum(raw) != want {
			return nil, errors.New("an Ogg page's checksum does not match")
		}
		p := oggPage{flags: data[5], granule: binary.LittleEndian.Uint64(data[6:14]), serial: binary.LittleEndian.Uint32(data[14:18]),
			lacing: lacing, body: data[27+n : end]}
		if len(pages) > 0 && p.serial != pages[0].serial {
			return nil, errors.New("an Ogg file with more than one stream")
		}
		pages = append(pages, p)
		data = data[end:]
	}
	return pages, nil
}

// write appends the page to buf as page number seq of its stream.
func (p oggPage) write(buf *bytes.Buffer, seq uint32) {
	start := buf.Len()
	var h [27]byte
	copy(h[:], "OggS")
	h[5] = p.flags
	binary.LittleEndian.PutUint64(h[6:], p.granule)
	binary.LittleEndian.PutUint32(h[14:], p.serial)
	binary.LittleEndian.PutUint32(h[18:], seq)
	h[26] = byte(len(p.lacing))
	buf.Write(h[:])
	buf.Write(p.lacing)
	buf.Write(p.body)
	binary.LittleEndian.PutUint32(buf.Bytes()[start+22:], oggChecksum(buf.Bytes()[start:]))
}

// ends reports whether the page's last packet ends on it.
func (p oggPage) ends() bool { return len(p.lacing) > 0 && p.lacing[len(p.lacing)-1] < 255 }

// opusStream is an Ogg/Opus file split into its header pages (OpusHead,
// OpusTags) and audio pages.
type opusStream struct {
	headers []oggPage
	audio   []oggPage
	preSkip uint64
}

func parseOpus(data []byte) (*opusStream, error) {
	pages, err := readOggPages(data)
	if err != nil {
		return nil, err
	}
	if len(pages) < 2 || !bytes.HasPrefix(pages[0].body, []byte("OpusHead")) || len(pages[0].body) < 19 {
		return nil, errNotOpus
	}
	s := &opusStream{preSkip: uint64(binary.LittleEndian.Uint16(pages[0].body[10:12]))}
	// OpusTags follows on pages of its own, ending with the page where
	// its packet ends.
	i := 1
	for ; i < len(pages); i++ {
		if pages[i].ends() {
			i++
			break
		}
	}
	s.headers, s.audio = pages[:i], pages[i:]
	return s, nil
}

// duration is the audio's length by its last granule position.
func (s *opusStream) duration() time.Duration {
	if len(s.audio) == 0 {
		return 0
	}
	g := s.audio[len(s.audio)-1].granule
	if g <= s.preSkip {
		return 0
	}
	return time.Duration(g-s.preSkip) * time.Second / opusRate
}

// OpusDuration tells how long an Ogg/Opus file plays; an error for
// anything else.
func OpusDuration(data []byte) (time.Duration, error) {
	s, err := parseOpus(data)
	if err != nil {
		return 0, err
	}
	return s.duration(), nil
}

// SplitOpus cuts an Ogg/Opus file into streams of at most max each (a
// file no longer than max comes back whole), cutting only where a page
// starts a new packet. A page holds well under a second of speech, so the
// parts are near max.
func SplitOpus(data []byte, max time.Duration) ([][]byte, error) {
	s, err := parseOpus(data)
	if err != nil {
		return nil, err
	}
	if s.duration() <= max {
		return [][]byte{data}, nil
	}
	limit := uint64(max.Seconds() * opusRate)
	var parts [][]byte
	var base uint64 // granule where the part starts, in the original
	for start := 0; start < len(s.audio); {
		end := start + 1 // a part takes at least one page
		for end < len(s.audio) {
			next := s.audio[end]
			if next.flags&oggContinued == 0 && s.audio[end-1].ends() && next.granule != ^uint64(0) && next.granule-base > limit {
				break
			}
			end++
		}
		parts = append(parts, s.part(s.audio[start:end], base))
		base = s.audio[end-1].granule
		start = end
	}
	return parts, nil
}

// part writes the headers and audio pages as a stream of its own, the
// granules counted from base (plus the pre-skip every stream begins with).
func (s *opusStream) part(audio []oggPage, base uint64) []byte {
	var buf bytes.Buffer
	seq := uint32(0)
	for _, h := range s.headers {
		h.write(&buf, seq)
		seq++
	}
	for i, p := range audio {
		p.flags &^= oggFirst | oggLast
		if i == len(audio)-1 {
			p.flags |= oggLast
		}
		if p.granule != ^uint64(0) { // -1: no packet ends on this page
			p.granule = p.granule - base + s.preSkip
			if base == 0 {
				p.granule -= s.preSkip // the first part keeps the original's timing
			}
		}
		p.write(&buf, seq)
		seq++
	}
	return buf.Bytes()
}
