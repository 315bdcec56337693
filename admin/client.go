package admin

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"time"
)

// Client talks to a running node's admin socket.
type Client struct {
	http *http.Client
	err  error // the socket answered but failed the owner check: every call fails with it
}

// Dial returns a client for the node running on dataDir, or nil if none runs there (or
// the socket is not served by the data directory's owner).
func Dial(dataDir string) *Client {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	c, err := dial(ctx, dataDir)
	if errors.Is(err, errImpostor) {
		return &Client{err: err}
	}
	if err != nil {
		return nil
	}
	c.Close()
	return &Client{http: &http.Client{Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return dial(ctx, dataDir)
		}}}}
}

// Raw GETs the admin path and returns the answer's bytes as they are (a profile).
func (c *Client) Raw(ctx context.Context, path string) ([]byte, error) {
	if c.err != nil {
		return nil, c.err
	}
	req, err := http.NewRequestWithContext(ctx, "GET", "http://node"+path, nil)
	if err != nil {
		return nil, err
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, fmt.Errorf("running node: %v", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		var e struct {
			Error string `json:"error"`
		}
		json.NewDecoder(resp.Body).Decode(&e)
		return nil, errors.New(e.Error)
	}
	return io.ReadAll(resp.Body)
}

// Do sends body (JSON, if not nil) to the admin path and decodes the answer into out.
func (c *Client) Do(ctx context.Context, method, path string, body, out any) error {
	if c.err != nil {
		return c.err
	}
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		if len(b) > maxBody {
			return fmt.Errorf("the request is %d bytes, more than the admin API reads (maxBody %d)", len(b), maxBody)
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, "http://node"+path, rd)
	if err != nil {
		return err
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return fmt.Errorf("running node: %v", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		var e struct {
			Error string `json:"error"`
		}
		json.NewDecoder(resp.Body).Decode(&e)
		return errors.New(e.Error)
	}
	return json.NewDecoder(resp.Body).Decode(out)
}
