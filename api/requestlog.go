package api

import (
	"encoding/json"
	"io"
	"strconv"
	"sync"
	"time"
	"unicode"
	"unicode/utf8"
)

// requestLine is one request's log line: what ServeHTTP logs as the record "request"
// at level INFO with these attributes. appendText and appendJSON write it byte for byte
// as log/slog's TextHandler and JSONHandler do with the node's handler options (level
// INFO, no source, no ReplaceAttr; TestRequestLineIsSlogs, FuzzRequestLineIsSlogs),
// without slog's general machinery, which was about 4 % of a node's CPU at 2,000
// requests/s (12 µs per line; BenchmarkRequestLine).
type requestLine struct {
	time       time.Time
	method     string
	route      string
	status     int
	durationMS float64
	bytes      int64
	principal  string // "" for none: the attribute is left out
	record     string // "" for none: record and index are left out
	index      uint64
}

// requestLog writes request lines to w, each with one Write (the node's line writer
// keeps lines whole).
type requestLog struct {
	w    io.Writer
	json bool
}

var lineBufs = sync.Pool{New: func() any { b := make([]byte, 0, 512); return &b }}

func (l *requestLog) write(line *requestLine) {
	bp := lineBufs.Get().(*[]byte)
	b := (*bp)[:0]
	if l.json {
		b = line.appendJSON(b)
	} else {
		b = line.appendText(b)
	}
	l.w.Write(b)
	if cap(b) <= 4096 {
		*bp = b
		lineBufs.Put(bp)
	}
}

func (l *requestLine) appendText(b []byte) []byte {
	b = append(b, "time="...)
	b = appendRFC3339Millis(b, l.time)
	b = append(b, " level=INFO msg=request method="...)
	b = appendTextString(b, l.method)
	b = append(b, " route="...)
	b = appendTextString(b, l.route)
	b = append(b, " status="...)
	b = strconv.AppendInt(b, int64(l.status), 10)
	b = append(b, " duration_ms="...)
	b = strconv.AppendFloat(b, l.durationMS, 'g', -1, 64)
	b = append(b, " bytes="...)
	b = strconv.AppendInt(b, l.bytes, 10)
	if l.principal != "" {
		b = append(b, " principal="...)
		b = appendTextString(b, l.principal)
	}
	if l.record != "" {
		b = append(b, " record="...)
		b = appendTextString(b, l.record)
		b = append(b, " index="...)
		b = strconv.AppendUint(b, l.index, 10)
	}
	return append(b, '\n')
}

func (l *requestLine) appendJSON(b []byte) []byte {
	b = append(b, `{"time":"`...)
	b = l.time.AppendFormat(b, time.RFC3339Nano)
	b = append(b, `","level":"INFO","msg":"request","method":`...)
	b = appendJSONString(b, l.method)
	b = append(b, `,"route":`...)
	b = appendJSONString(b, l.route)
	b = append(b, `,"status":`...)
	b = strconv.AppendInt(b, int64(l.status), 10)
	b = append(b, `,"duration_ms":`...)
	if f := l.durationMS; f == 0 || f >= 1e-6 && f < 1e21 {
		b = strconv.AppendFloat(b, f, 'f', -1, 64) // as encoding/json writes these
	} else {
		m, err := json.Marshal(f)
		if err != nil {
			m = []byte(`"!ERROR:` + err.Error() + `"`)
		}
		b = append(b, m...)
	}
	b = append(b, `,"bytes":`...)
	b = strconv.AppendInt(b, l.bytes, 10)
	if l.principal != "" {
		b = append(b, `,"principal":`...)
		b = appendJSONString(b, l.principal)
	}
	if l.record != "" {
		b = append(b, `,"record":`...)
		b = appendJSONString(b, l.record)
		b = append(b, `,"index":`...)
		b = strconv.AppendUint(b, l.index, 10)
	}
	return append(b, "}\n"...)
}

// appendRFC3339Millis is the time as slog's text handler writes it: RFC 3339 with
// exactly three digits of milliseconds, truncated.
func appendRFC3339Millis(b []byte, t time.Time) []byte {
	const prefixLen = len("2006-01-02T15:04:05.000")
	n := len(b)
	t = t.Truncate(time.Millisecond).Add(time.Millisecond / 10)
	b = t.AppendFormat(b, time.RFC3339Nano)
	return append(b[:n+prefixLen], b[n+prefixLen+1:]...)
}

// appendTextString is a value as slog's text handler writes it: as it is, or quoted
// (strconv.Quote) when empty or holding a space, '=', a character JSON would escape
// (a backslash excepted), a non-printing or space character, or invalid UTF-8.
func appendTextString(b []byte, s string) []byte {
	if textNeedsQuoting(s) {
		return strconv.AppendQuote(b, s)
	}
	return append(b, s...)
}

func textNeedsQuoting(s string) bool {
	if s == "" {
		return true
	}
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c != '\\' && (c == ' ' || c == '=' || !jsonSafe(c)) {
				return true
			}
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError || unicode.IsSpace(r) || !unicode.IsPrint(r) {
			return true
		}
		i += size
	}
	return false
}

// jsonSafe reports an ASCII byte a JSON string holds as it is (HTML characters
// included, as slog writes them).
func jsonSafe(c byte) bool { return c >= 0x20 && c != '"' && c != '\\' }

// appendJSONString is s as a JSON string as slog's JSON handler writes it: control
// characters, quote and backslash escaped, invalid UTF-8 as \ufffd, U+2028 and U+2029
// escaped, everything else (HTML characters too) as it is.
func appendJSONString(b []byte, s string) []byte {
	const hex = "0123456789abcdef"
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		if c := s[i]; c < utf8.RuneSelf {
			if jsonSafe(c) {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '\\', '"':
				b = append(b, '\\', c)
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xF])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
			i += size
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			b = append(b, s[start:i]...)
			b = append(b, '\\', 'u', '2', '0', '2', hex[r&0xF])
			i += size
			start = i
			continue
		}
		i += size
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}
