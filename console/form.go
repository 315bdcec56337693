package console

import (
	"errors"
	"io"
	"mime"
	"net/http"
	"net/url"
	"strconv"
	"unicode/utf8"
)

// form is a posted form, decoded strictly: every field once, each within
// MaxFieldBytes and valid UTF-8.
type form map[string]string

// get returns a field ("" when absent).
func (f form) get(name string) string { return f[name] }

// readForm reads an application/x-www-form-urlencoded body of at most MaxFormBytes.
func readForm(w http.ResponseWriter, r *http.Request) (form, error) {
	ct, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil || ct != "application/x-www-form-urlencoded" {
		return nil, errorf(http.StatusUnsupportedMediaType, "the console takes forms sent as application/x-www-form-urlencoded")
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxFormBytes))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return nil, errorf(http.StatusRequestEntityTooLarge, "the form is larger than %d bytes (MaxFormBytes)", MaxFormBytes)
		}
		return nil, errorf(http.StatusBadRequest, "the form could not be read")
	}
	return parseForm(string(body))
}

// parseForm decodes a form body: outside bytes, so every limit is checked.
func parseForm(body string) (form, error) {
	if len(body) > MaxFormBytes {
		return nil, errorf(http.StatusRequestEntityTooLarge, "the form is larger than %d bytes (MaxFormBytes)", MaxFormBytes)
	}
	vals, err := url.ParseQuery(body)
	if err != nil {
		return nil, errorf(http.StatusBadRequest, "the form is not valid URL encoding")
	}
	if len(vals) > MaxFormFields {
		return nil, errorf(http.StatusBadRequest, "the form has %d fields, more than %d (MaxFormFields)", len(vals), MaxFormFields)
	}
	f := form{}
	for k, vs := range vals {
		if len(vs) != 1 {
			return nil, errorf(http.StatusBadRequest, "the form field %s is sent %d times; send it once", clip(k), len(vs))
		}
		if err := checkField(k, vs[0]); err != nil {
			return nil, err
		}
		f[k] = vs[0]
	}
	return f, nil
}

// checkField bounds one field or query parameter.
func checkField(name, value string) error {
	if len(name) > MaxFieldBytes || len(value) > MaxFieldBytes {
		return errorf(http.StatusBadRequest, "the field %s is longer than %d bytes (MaxFieldBytes)", clip(name), MaxFieldBytes)
	}
	if !utf8.ValidString(name) || !utf8.ValidString(value) {
		return errorf(http.StatusBadRequest, "the field %s is not valid UTF-8", clip(name))
	}
	return nil
}

// query returns a query parameter, bounded as a form field (once, within
// MaxFieldBytes).
func query(r *http.Request, name string) (string, error) {
	vs := r.URL.Query()[name]
	switch len(vs) {
	case 0:
		return "", nil
	case 1:
		return vs[0], checkField(name, vs[0])
	}
	return "", errorf(http.StatusBadRequest, "the parameter %s is given %d times; give it once", clip(name), len(vs))
}

// parseIndex reads a log index ("" is absent: ok false).
func parseIndex(name, s string) (uint64, bool, error) {
	if s == "" {
		return 0, false, nil
	}
	n, err := strconv.ParseUint(s, 10, 64)
	if err != nil {
		return 0, false, errorf(http.StatusBadRequest, "%s: %q is not a log index (a whole number from 0)", name, clip(s))
	}
	return n, true, nil
}

// clip shortens what a browser sent before it is shown back or logged.
func clip(s string) string {
	const max = 64
	if len(s) <= max {
		return s
	}
	for i := max; i > 0; i-- {
		if utf8.RuneStart(s[i]) {
			return s[:i] + "…"
		}
	}
	return "…"
}
