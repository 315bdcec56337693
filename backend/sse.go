package backend

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
)

// SPEC: https://html.spec.whatwg.org/multipage/server-sent-events.html#event-stream-interpretation

// sseEvent is one dispatched server-sent event.
type sseEvent struct {
	typ  string // the "event" field; "" for the default ("message")
	data []byte // the data lines joined by "\n"; valid until the next call of next
}

// sseReader parses a text/event-stream. It yields only complete events (ended by a
// blank line); an event cut off by the end of the stream is dropped, as the spec
// says. Lines may end in CRLF, LF or CR; comments, and fields other than data, event
// and llama.cpp's non-standard error, are skipped. No line or event may exceed max
// bytes.
//
// A line ended by a lone CR is seen only when an LF follows later in the stream; no
// model server ends lines with a lone CR, so this costs nothing but latency there.
type sseReader struct {
	r   *bufio.Reader
	max int

	chunk   []byte // bytes up to and including the next LF, terminators removed
	pending []byte // unparsed rest of chunk: lines separated by CR
	more    bool   // pending holds at least one line (possibly empty)
	atEOF   bool   // the stream has ended; after pending, report io.EOF
	started bool   // the optional BOM at the very start has been handled

	data    []byte
	hasData bool
	typ     []byte
}

func newSSEReader(r *bufio.Reader, max int) *sseReader {
	return &sseReader{r: r, max: max}
}

var errSSELimit = errors.New("server-sent event limit")

// next returns the next complete event, or io.EOF at the end of the stream.
func (s *sseReader) next() (sseEvent, error) {
	for {
		if !s.more {
			if s.atEOF {
				return sseEvent{}, io.EOF
			}
			if err := s.readChunk(); err != nil {
				return sseEvent{}, err
			}
			continue
		}
		line := s.pending
		if i := bytes.IndexByte(s.pending, '\r'); i >= 0 {
			line, s.pending = s.pending[:i], s.pending[i+1:]
		} else {
			s.pending, s.more = nil, false
		}
		if len(line) == 0 { // blank line: dispatch
			typ := string(s.typ)
			s.typ = s.typ[:0]
			if !s.hasData {
				continue
			}
			s.hasData = false
			ev := sseEvent{typ: typ, data: s.data[:len(s.data)-1]}
			s.data = s.data[:0]
			return ev, nil
		}
		if line[0] == ':' { // comment
			continue
		}
		field, value := line, []byte(nil)
		if i := bytes.IndexByte(line, ':'); i >= 0 {
			field, value = line[:i], line[i+1:]
			if len(value) > 0 && value[0] == ' ' {
				value = value[1:]
			}
		}
		switch string(field) {
		case "event":
			s.typ = append(s.typ[:0], value...)
		case "error":
			// Not an SSE field: older llama.cpp servers streamed an error
			// as a line "error: {…}" and then "data: [DONE]". Read strictly, the error
			// would be dropped and the stream would look whole, so the line is read
			// as data of an event of type "error".
			s.typ = append(s.typ[:0], "error"...)
			fallthrough
		case "data":
			if len(s.data)+len(value)+1 > s.max {
				return sseEvent{}, s.tooLarge()
			}
			s.data = append(s.data, value...)
			s.data = append(s.data, '\n')
			s.hasData = true
		}
	}
}

// readChunk reads up to and including the next LF and sets pending to the lines in
// it. At the end of the stream, a last line with no terminator is incomplete and
// dropped.
func (s *sseReader) readChunk() error {
	s.chunk = s.chunk[:0]
	for {
		frag, err := s.r.ReadSlice('\n')
		if len(s.chunk)+len(frag) > s.max+len("data: \r\n") {
			return s.tooLarge()
		}
		s.chunk = append(s.chunk, frag...)
		if err == bufio.ErrBufferFull {
			continue
		}
		if err == io.EOF {
			s.atEOF = true
			break
		}
		if err != nil {
			return err
		}
		break
	}
	c := s.chunk
	if !s.started && len(c) > 0 {
		s.started = true
		c = bytes.TrimPrefix(c, []byte("\uFEFF"))
	}
	if s.atEOF {
		// Only lines ended by a CR are complete.
		i := bytes.LastIndexByte(c, '\r')
		if i < 0 {
			return nil
		}
		c = c[:i]
	} else {
		c = c[:len(c)-1]                      // LF
		c = bytes.TrimSuffix(c, []byte{'\r'}) // CRLF
	}
	s.pending, s.more = c, true
	return nil
}

func (s *sseReader) tooLarge() error {
	return fmt.Errorf("%w: a server-sent event is larger than %d bytes (MaxEventBytes)", errSSELimit, s.max)
}
