package backend

import (
	"bufio"
	"bytes"
	"io"
	"net/http"
	"strconv"
	"strings"
)

// readPlainResponse reads, without net/http, a response head of the plain kind a model
// server sends to a request that is not streamed, when the whole head is already in
// br's buffer: HTTP/1.1; a status from 200 to 599 other than 204 and 304, with a reason
// phrase; each header line "Name: value" ending in CRLF, the name of letters, digits
// and '-', the value of visible ASCII, spaces and tabs; exactly one Content-Length, of
// digits; and none of the headers that change how the body is framed or whether the
// connection is kept (Transfer-Encoding, Connection, Trailer). It answers a request
// that is not HEAD. The response is what http.ReadResponse makes of the same bytes
// (FuzzPlainResponseIsReadResponses), body included; ok is false, and br untouched,
// for anything else, which the caller reads with http.ReadResponse. net/http's general
// reader was about 2 % of the node's CPU per chat.
func readPlainResponse(br *bufio.Reader, req *http.Request) (resp *http.Response, ok bool) {
	if req == nil || req.Method == http.MethodHead {
		return nil, false
	}
	buf, _ := br.Peek(br.Buffered())
	end := bytes.Index(buf, []byte("\r\n\r\n"))
	if end < 0 {
		return nil, false
	}
	// One string holds the status and every value (one allocation, as net/http's reader
	// shares one for its values).
	head := string(buf[:end+2]) // every line with its CRLF
	status, rest, _ := strings.Cut(head, "\r\n")
	// "HTTP/1.1 " status code, a space, a reason phrase of at least one byte.
	if len(status) < 14 || status[:9] != "HTTP/1.1 " || status[12] != ' ' || !visible(status[13:]) {
		return nil, false
	}
	code := 0
	for _, c := range []byte(status[9:12]) {
		if c < '0' || c > '9' {
			return nil, false
		}
		code = code*10 + int(c-'0')
	}
	if code < 200 || code > 599 || code == http.StatusNoContent || code == http.StatusNotModified {
		return nil, false
	}
	n := strings.Count(rest, "\r\n")
	h := make(http.Header, n)
	values := make([]string, n) // each header's value slice is a part of this one
	length := int64(-1)
	for i := 0; len(rest) > 0; i++ {
		var line string
		line, rest, _ = strings.Cut(rest, "\r\n")
		name, value, found := strings.Cut(line, ":")
		if !found || len(name) == 0 || !headerName(name) {
			return nil, false
		}
		value = strings.Trim(value, " \t")
		if !visible(value) {
			return nil, false
		}
		key, known := commonHeaders[name]
		if !known {
			key = http.CanonicalHeaderKey(name)
		}
		switch key {
		case "Transfer-Encoding", "Connection", "Trailer":
			return nil, false
		case "Content-Length":
			if length >= 0 || len(value) == 0 || len(value) > 18 || value[0] == '+' || value[0] == '-' {
				return nil, false
			}
			v, err := strconv.ParseInt(value, 10, 64)
			if err != nil {
				return nil, false
			}
			length = v
		}
		if vs := h[key]; vs != nil {
			h[key] = append(vs, value)
		} else {
			values[i] = value
			h[key] = values[i : i+1 : i+1]
		}
	}
	if length < 0 {
		return nil, false
	}
	resp = &http.Response{
		Status: status[9:], StatusCode: code,
		Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
		Header: h, ContentLength: length, Request: req,
	}
	br.Discard(end + 4)
	if length == 0 {
		resp.Body = http.NoBody
	} else {
		resp.Body = &lengthBody{r: br, left: length}
	}
	return resp, true
}

// commonHeaders maps the header names model servers send, as they spell them, to
// their canonical form, so that reading them allocates no key.
var commonHeaders = func() map[string]string {
	m := map[string]string{}
	for _, k := range []string{"Content-Type", "Content-Length", "Date", "Server", "Keep-Alive",
		"Access-Control-Allow-Origin", "Vary", "Cache-Control", "X-Request-Id"} {
		m[k], m[strings.ToLower(k)] = k, k
	}
	return m
}()

// headerName says whether b is made only of letters, digits and '-'.
func headerName(b string) bool {
	for _, c := range []byte(b) {
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-') {
			return false
		}
	}
	return true
}

// visible says whether b holds only visible ASCII, spaces and tabs.
func visible(b string) bool {
	for _, c := range []byte(b) {
		if (c < ' ' || c > '~') && c != '\t' {
			return false
		}
	}
	return true
}

// lengthBody is a body of a known length read from the connection's reader: io.EOF
// comes with its last bytes, as net/http's body gives it, and io.ErrUnexpectedEOF if
// the connection ends before.
type lengthBody struct {
	r    *bufio.Reader
	left int64
}

func (b *lengthBody) Read(p []byte) (int, error) {
	if b.left <= 0 {
		return 0, io.EOF
	}
	if int64(len(p)) > b.left {
		p = p[:b.left]
	}
	n, err := b.r.Read(p)
	b.left -= int64(n)
	switch {
	case b.left == 0:
		return n, io.EOF
	case err == io.EOF:
		return n, io.ErrUnexpectedEOF
	}
	return n, err
}

func (b *lengthBody) Close() error { return nil }
