package backend

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"sync"
	"syscall"
	"time"
)

// Transport is the http.RoundTripper a node calls its model servers through. Plain
// http:// exchanges run on the caller's goroutine over kept-alive HTTP/1.1
// connections: the request is written, the response read and parsed (a plain head by
// readPlainResponse, any other by net/http's own http.ReadResponse), and the
// connection goes back to the pool once its body has
// been read to the end. net/http's Transport runs a reader and a writer goroutine per
// connection, and handing every request and response between them and the caller was
// about a fifth of a node's CPU at 2,000 requests/s (three goroutine wake-ups per
// request on a loaded machine). Other schemes (https://) go to TLS, an *http.Transport.
//
// Every connection is dialled with Dial (the egress guard's DialContext), so the
// guard's rules apply to this transport as to any other.
type Transport struct {
	// Dial opens a connection; required.
	Dial func(ctx context.Context, network, address string) (net.Conn, error)
	// TLS carries every request that is not plain http:// (nil: refused).
	TLS http.RoundTripper
	// MaxIdlePerHost bounds the idle connections kept per host (default 1024, as many
	// requests as a node serves at once).
	MaxIdlePerHost int
	// IdleTimeout closes connections idle longer (default 90 s).
	IdleTimeout time.Duration
	// MaxHeaderBytes bounds a response's status line and headers (default 64 KiB).
	MaxHeaderBytes int64

	mu   sync.Mutex
	idle map[string][]*persistConn // guarded by mu; by host:port, most recently used last
}

// Transport defaults.
const (
	DefaultMaxIdlePerHost = 1024
	DefaultIdleTimeout    = 90 * time.Second
	DefaultMaxHeaderBytes = 64 << 10
)

// persistConn is one kept-alive connection and its buffers.
type persistConn struct {
	conn  net.Conn
	cap   *capReader
	br    *bufio.Reader
	bw    *bufio.Writer
	host  string
	since time.Time // when it went idle
}

// capReader fails a read past its remaining allowance (headers are read under a cap;
// bodies are bounded by their readers).
type capReader struct {
	r    io.Reader
	left int64 // < 0: no cap
	max  int64
}

func (c *capReader) Read(p []byte) (int, error) {
	if c.left == 0 {
		return 0, fmt.Errorf("the response's status line and headers are larger than %d bytes (Transport.MaxHeaderBytes)", c.max)
	}
	if c.left > 0 && int64(len(p)) > c.left {
		p = p[:c.left]
	}
	n, err := c.r.Read(p)
	if c.left > 0 {
		c.left -= int64(n)
	}
	return n, err
}

// RoundTrip implements http.RoundTripper.
func (t *Transport) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.URL.Scheme != "http" {
		if t.TLS == nil {
			if req.Body != nil {
				req.Body.Close()
			}
			return nil, fmt.Errorf("backend transport: scheme %q is not served", req.URL.Scheme)
		}
		return t.TLS.RoundTrip(req)
	}
	host := req.URL.Host
	if req.URL.Port() == "" {
		host = net.JoinHostPort(req.URL.Hostname(), "80")
	}
	for attempt := 0; ; attempt++ {
		pc, reused, err := t.get(req.Context(), host)
		if err != nil {
			return nil, err
		}
		resp, err := t.exchange(req.Context(), req, req.Close, pc, req.Write)
		if err == nil {
			return resp, nil
		}
		var nw *notWrittenError
		if reused && attempt == 0 && errors.As(err, &nw) && req.GetBody != nil && req.Context().Err() == nil {
			// A kept-alive connection the server had closed: the request did not go out,
			// so it is sent again on a new connection.
			b, gerr := req.GetBody()
			if gerr != nil {
				return nil, err
			}
			req = req.Clone(req.Context()) // the caller's request is not changed
			req.Body = b
			continue
		}
		return nil, err
	}
}

// A directPost is a POST of a JSON body to a plain http:// server, written straight into the
// connection's buffer: Head holds the request line and headers as net/http's
// Request.Write writes them for such a request (TestPostWritesWhatRequestWriteWrites),
// split around the Content-Length value. It spares the caller building an
// *http.Request and net/http formatting one, a few percent of a node's CPU per chat.
type directPost struct {
	URL  *url.URL
	Host string // host:port dialled
	// Pre is the request line, Host and User-Agent, and "Content-Length: "; Rest the
	// rest of the head, from the CRLF after the length to the empty line.
	Pre, Rest []byte
}

// post sends body as p describes, with RoundTrip's rules for reused connections: a
// request that could not be written on a kept connection the server had closed is
// sent once more on a new one.
func (t *Transport) post(ctx context.Context, p *directPost, body []byte) (*http.Response, error) {
	req := &http.Request{Method: http.MethodPost, URL: p.URL, Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1, Host: p.URL.Host}
	write := func(w io.Writer) error {
		bw := w.(*bufio.Writer)
		bw.Write(p.Pre)
		var n [20]byte
		bw.Write(strconv.AppendInt(n[:0], int64(len(body)), 10))
		bw.Write(p.Rest)
		_, err := bw.Write(body)
		return err
	}
	for attempt := 0; ; attempt++ {
		pc, reused, err := t.get(ctx, p.Host)
		if err != nil {
			return nil, err
		}
		resp, err := t.exchange(ctx, req, false, pc, write)
		if err == nil {
			return resp, nil
		}
		var nw *notWrittenError
		if reused && attempt == 0 && errors.As(err, &nw) && ctx.Err() == nil {
			continue
		}
		return nil, err
	}
}

// notWrittenError is a failure to send a request: nothing of it reached the server in
// full, so it may be sent again.
type notWrittenError struct{ err error }

func (e *notWrittenError) Error() string { return e.err.Error() }
func (e *notWrittenError) Unwrap() error { return e.err }

// exchange writes the request on pc with write, then reads the response's head (req
// is the request it answers, as http.ReadResponse needs it; closeAfter says that the
// request asked for the connection to close); the body reads from pc and hands it
// back to the pool at its end. ctx interrupts the exchange, body included.
func (t *Transport) exchange(ctx context.Context, req *http.Request, closeAfter bool, pc *persistConn, write func(io.Writer) error) (*http.Response, error) {
	stop := context.AfterFunc(ctx, func() { pc.conn.SetDeadline(time.Unix(1, 0)) })
	fail := func(err error) (*http.Response, error) {
		stop()
		pc.conn.Close()
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, err
	}
	if err := write(pc.bw); err != nil {
		return fail(&notWrittenError{err})
	}
	if err := pc.bw.Flush(); err != nil {
		return fail(&notWrittenError{err})
	}
	var resp *http.Response
	for {
		pc.cap.left = t.maxHeaderBytes()
		r, err := readResponse(pc.br, req)
		pc.cap.left = -1
		if err != nil {
			return fail(err)
		}
		if r.StatusCode >= 200 || r.StatusCode == http.StatusSwitchingProtocols {
			resp = r
			break
		}
		// 1xx informational answers (103 Early Hints) come before the real one.
	}
	if resp.StatusCode == http.StatusSwitchingProtocols {
		return fail(errors.New("the server switched protocols, which a model server must not"))
	}
	body := &connBody{t: t, pc: pc, stop: stop, body: resp.Body,
		reusable: !resp.Close && !closeAfter && (resp.ContentLength >= 0 || len(resp.TransferEncoding) > 0)}
	if resp.Body == http.NoBody || resp.ContentLength == 0 {
		body.finish(true)
		resp.Body = http.NoBody
		return resp, nil
	}
	resp.Body = body
	return resp, nil
}

// readResponse reads a response head and readies its body: a plain one without
// net/http (readPlainResponse) once the first bytes are in, anything else with
// http.ReadResponse.
func readResponse(br *bufio.Reader, req *http.Request) (*http.Response, error) {
	if _, err := br.Peek(1); err != nil {
		if err == io.EOF {
			err = io.ErrUnexpectedEOF // as http.ReadResponse reports a response cut before its first line
		}
		return nil, err
	}
	if resp, ok := readPlainResponse(br, req); ok {
		return resp, nil
	}
	return http.ReadResponse(br, req)
}

// connBody is a response body that returns its connection to the pool when read to
// the end, and closes it when abandoned before.
type connBody struct {
	t        *Transport
	pc       *persistConn
	stop     func() bool
	body     io.ReadCloser
	reusable bool

	mu   sync.Mutex
	done bool // guarded by mu
}

func (b *connBody) Read(p []byte) (int, error) {
	b.mu.Lock()
	done := b.done
	b.mu.Unlock()
	if done {
		return 0, io.EOF
	}
	n, err := b.body.Read(p)
	if err == io.EOF {
		b.finish(true)
	} else if err != nil {
		b.finish(false)
	}
	return n, err
}

func (b *connBody) Close() error {
	b.finish(false)
	return nil
}

// finish ends the exchange once: the connection goes back to the pool if the body was
// read to its end, the context did not interrupt it, and both sides keep it alive.
func (b *connBody) finish(atEOF bool) {
	b.mu.Lock()
	if b.done {
		b.mu.Unlock()
		return
	}
	b.done = true
	b.mu.Unlock()
	interrupted := !b.stop()
	if atEOF && b.reusable && !interrupted {
		b.t.put(b.pc)
		return
	}
	b.pc.conn.Close()
}

func (t *Transport) maxHeaderBytes() int64 {
	if t.MaxHeaderBytes > 0 {
		return t.MaxHeaderBytes
	}
	return DefaultMaxHeaderBytes
}

// get returns an idle connection to host that is still open, or dials one.
func (t *Transport) get(ctx context.Context, host string) (pc *persistConn, reused bool, err error) {
	timeout := t.IdleTimeout
	if timeout <= 0 {
		timeout = DefaultIdleTimeout
	}
	for {
		t.mu.Lock()
		list := t.idle[host]
		// The oldest are first: close those idle too long.
		var stale []*persistConn
		for len(list) > 0 && time.Since(list[0].since) > timeout {
			stale = append(stale, list[0])
			list = list[1:]
		}
		if len(list) > 0 {
			pc = list[len(list)-1]
			list = list[:len(list)-1]
		}
		if t.idle != nil {
			t.idle[host] = list
		}
		t.mu.Unlock()
		for _, s := range stale {
			s.conn.Close()
		}
		if pc == nil {
			break
		}
		if open(pc.conn) {
			return pc, true, nil
		}
		pc.conn.Close()
		pc = nil
	}
	if t.Dial == nil {
		return nil, false, errors.New("backend transport: no Dial")
	}
	c, err := t.Dial(ctx, "tcp", host)
	if err != nil {
		return nil, false, err
	}
	cr := &capReader{r: c, left: -1, max: t.maxHeaderBytes()}
	return &persistConn{conn: c, cap: cr, br: bufio.NewReaderSize(cr, 16<<10), bw: bufio.NewWriterSize(c, 16<<10), host: host}, false, nil
}

// put keeps pc for the next request to its host.
func (t *Transport) put(pc *persistConn) {
	pc.conn.SetDeadline(time.Time{})
	max := t.MaxIdlePerHost
	if max <= 0 {
		max = DefaultMaxIdlePerHost
	}
	pc.since = time.Now()
	t.mu.Lock()
	if t.idle == nil {
		t.idle = map[string][]*persistConn{}
	}
	if len(t.idle[pc.host]) >= max || pc.br.Buffered() > 0 {
		t.mu.Unlock()
		pc.conn.Close() // full, or the server sent more than its answer
		return
	}
	t.idle[pc.host] = append(t.idle[pc.host], pc)
	t.mu.Unlock()
}

// CloseIdleConnections closes every idle connection (and the TLS transport's).
func (t *Transport) CloseIdleConnections() {
	t.mu.Lock()
	all := t.idle
	t.idle = nil
	t.mu.Unlock()
	for _, list := range all {
		for _, pc := range list {
			pc.conn.Close()
		}
	}
	if c, ok := t.TLS.(interface{ CloseIdleConnections() }); ok {
		c.CloseIdleConnections()
	}
}

// open reports whether an idle connection is still open and silent: the server has
// neither closed it nor sent anything unasked. It peeks without blocking (one recv
// with MSG_PEEK|MSG_DONTWAIT); a connection that cannot be peeked at is trusted.
func open(c net.Conn) bool {
	sc, ok := c.(syscall.Conn)
	if !ok {
		return true
	}
	raw, err := sc.SyscallConn()
	if err != nil {
		return false
	}
	alive := true
	var buf [1]byte
	err = raw.Read(func(fd uintptr) bool {
		_, _, rerr := syscall.Recvfrom(int(fd), buf[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
		// EAGAIN: nothing to read, still open. Anything else is an error, the
		// server's close (0 bytes) or bytes nobody asked for.
		alive = rerr == syscall.EAGAIN || rerr == syscall.EINTR
		return true
	})
	return err == nil && alive
}
