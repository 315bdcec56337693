package brain

import (
	"bytes"
	"embed"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"

	"github.com/sios-project/sios/internal/files"
	"gopkg.in/yaml.v3"
)

//go:embed catalogue/*.yaml
var embedded embed.FS

// loadEmbedded parses the embedded catalogue once per process: it is a pure function
// of bytes fixed at build time, and its brains are never modified.
var loadEmbedded = sync.OnceValues(func() (map[string]*Brain, error) {
	all := make(map[string]*Brain)
	origin := make(map[string]string) // id → "file:line" that defined it
	names, err := fs.Glob(embedded, "catalogue/*.yaml")
	if err != nil {
		return nil, fmt.Errorf("embedded catalogue: %v", err)
	}
	sort.Strings(names)
	for _, name := range names {
		data, err := embedded.ReadFile(name)
		if err != nil {
			return nil, fmt.Errorf("embedded %s: %v", name, err)
		}
		where := "embedded " + path.Join("brain", name)
		brains, err := parseFile(where, data)
		if err != nil {
			return nil, err
		}
		for _, p := range brains {
			if prev, dup := origin[p.brain.ID]; dup {
				return nil, fmt.Errorf("%s:%d: brain %q is already defined at %s", where, p.line, p.brain.ID, prev)
			}
			all[p.brain.ID] = p.brain
			origin[p.brain.ID] = fmt.Sprintf("%s:%d", where, p.line)
		}
	}
	return all, nil
})

// Load returns the catalogue: the embedded brains, then every *.yaml and *.yml file
// in dataDir/brains/ in name order. A data-directory brain whose id matches an
// embedded one replaces it whole (fields it leaves out take their defaults, not the
// embedded values); any other id adds a brain. Files whose names start with '.' are
// ignored, and so is a missing brains/ directory or an empty dataDir.
//
// Every file is decoded strictly and every brain validated; the first problem is
// returned as an error naming the file and line, and no catalogue is returned.
func Load(dataDir string) (*Catalogue, error) {
	base, err := loadEmbedded()
	if err != nil {
		return nil, err
	}
	all := make(map[string]*Brain, len(base))
	for id, b := range base {
		all[id] = b // shared, never modified: a Catalogue hands out copies
	}

	var fromData []string
	if dataDir != "" {
		dir := filepath.Join(dataDir, "brains")
		entries, err := os.ReadDir(dir)
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("brains directory: %v", err)
		}
		dataOrigin := make(map[string]string)
		for _, e := range entries { // os.ReadDir sorts by name
			name := e.Name()
			ext := filepath.Ext(name)
			if strings.HasPrefix(name, ".") || (ext != ".yaml" && ext != ".yml") {
				continue
			}
			file := filepath.Join(dir, name)
			data, err := readCapped(file)
			if err != nil {
				return nil, err
			}
			brains, err := parseFile(file, data)
			if err != nil {
				return nil, err
			}
			for _, p := range brains {
				at := fmt.Sprintf("%s:%d", file, p.line)
				if prev, dup := dataOrigin[p.brain.ID]; dup {
					return nil, fmt.Errorf("%s: brain %q is already defined at %s; a data directory may define each id once", at, p.brain.ID, prev)
				}
				dataOrigin[p.brain.ID] = at
				all[p.brain.ID] = p.brain
				if len(all) > MaxBrains {
					return nil, fmt.Errorf("%s: brain %q makes more than %d brains (MaxBrains)", at, p.brain.ID, MaxBrains)
				}
			}
		}
		for id := range dataOrigin {
			fromData = append(fromData, id)
		}
		sort.Strings(fromData)
	}
	if _, ok := all[DefaultRoute]; !ok {
		return nil, fmt.Errorf("catalogue has no %q brain, the router's default", DefaultRoute)
	}
	return newCatalogue(all, fromData), nil
}

// readCapped reads a regular file of at most MaxFileSize bytes.
func readCapped(file string) ([]byte, error) {
	f, err := os.Open(file)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if !st.Mode().IsRegular() {
		return nil, fmt.Errorf("%s: not a regular file", file)
	}
	data, err := files.ReadCapped(f, MaxFileSize, "MaxFileSize")
	if err != nil {
		return nil, fmt.Errorf("%s: %v", file, err)
	}
	return data, nil
}

// parsed is one brain from a file and the line of its document.
type parsed struct {
	brain *Brain
	line  int
}

// parseFile decodes and validates every brain in one file; where names the file in
// errors. A file holds one or more YAML documents, each one brain.
func parseFile(where string, data []byte) (out []parsed, err error) {
	if len(data) > MaxFileSize {
		return nil, fmt.Errorf("%s: larger than %d bytes (MaxFileSize)", where, MaxFileSize)
	}
	defer func() {
		// The YAML parser is outside code fed outside bytes: a panic in it must
		// reject the file, not take the node down.
		if r := recover(); r != nil {
			out, err = nil, fmt.Errorf("%s: the YAML parser failed on this file: %v", where, r)
		}
	}()
	// Two passes over the same bytes in step: one into nodes, for the lines of
	// fields and which keys are present; one strict, for unknown fields and types.
	nodes := yaml.NewDecoder(bytes.NewReader(data))
	strict := yaml.NewDecoder(bytes.NewReader(data))
	strict.KnownFields(true)
	lines := make(map[string]int)
	for doc := 1; ; doc++ {
		var n yaml.Node
		err := nodes.Decode(&n)
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, yamlError(where, err)
		}
		b := new(Brain)
		strictErr := strict.Decode(b)
		m := &n
		if m.Kind == yaml.DocumentNode && len(m.Content) == 1 {
			m = m.Content[0]
		}
		if m.Kind == yaml.ScalarNode && m.ShortTag() == "!!null" && m.Value == "" {
			continue // an empty document: "---" with nothing after it
		}
		if m.Kind != yaml.MappingNode {
			return nil, fmt.Errorf("%s:%d: document %d is %s, not a brain (a mapping of fields)", where, m.Line, doc, yamlShow(m))
		}
		if strictErr != nil {
			return nil, yamlError(where, strictErr)
		}
		if k := findMerge(m); k != nil {
			return nil, fmt.Errorf("%s:%d: merge keys (<<) are not supported in brain files", where, k.Line)
		}
		if doc > MaxBrains {
			return nil, fmt.Errorf("%s:%d: more than %d brains in one file (MaxBrains)", where, m.Line, MaxBrains)
		}
		applyDefaults(b, m)
		if fe := b.validate(); fe != nil {
			prefix := ""
			if validID(b.ID) {
				prefix = fmt.Sprintf("brain %q: ", b.ID)
			}
			return nil, fmt.Errorf("%s:%d: %s%v", where, lineOf(m, fe.path), prefix, fe)
		}
		if first, dup := lines[b.ID]; dup {
			return nil, fmt.Errorf("%s:%d: brain %q is defined again (first at line %d)", where, m.Line, b.ID, first)
		}
		lines[b.ID] = m.Line
		out = append(out, parsed{brain: b, line: m.Line})
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%s: no brain in file", where)
	}
	return out, nil
}

// applyDefaults fills the optional budget fields the mapping m leaves out (or sets
// to null), and makes empty lists nil, so that "tools: []" and no tools are one
// brain. A field that is present keeps its value and must pass validation.
func applyDefaults(b *Brain, m *yaml.Node) {
	if len(b.Tools) == 0 {
		b.Tools = nil
	}
	if len(b.Keywords) == 0 {
		b.Keywords = nil
	}
	if len(b.Examples) == 0 {
		b.Examples = nil
	}
	if value(m, "parameters") == nil {
		b.Parameters = cloneStrings(DefaultParameters)
	} else if b.Parameters == nil {
		b.Parameters = []string{} // "parameters: []": callers may set none
	}
	if len(b.ClientTools) == 0 {
		b.ClientTools = nil
	}
	if value(m, "max_tokens") == nil {
		b.MaxTokens = DefaultMaxTokens
	}
	if value(m, "timeout") == nil {
		b.Timeout = Duration(DefaultTimeout)
	}
	rl := value(m, "rate_limit")
	if value(rl, "requests_per_minute") == nil {
		b.RateLimit.RequestsPerMinute = DefaultRequestsPerMinute
	}
	if value(rl, "burst") == nil {
		b.RateLimit.Burst = DefaultBurst
	}
}

// entry returns the key and value nodes of key in mapping m (the value with aliases
// resolved), or nils.
func entry(m *yaml.Node, key string) (k, v *yaml.Node) {
	if m == nil || m.Kind != yaml.MappingNode {
		return nil, nil
	}
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value == key {
			v := m.Content[i+1]
			for v.Kind == yaml.AliasNode && v.Alias != nil {
				v = v.Alias
			}
			return m.Content[i], v
		}
	}
	return nil, nil
}

// value returns the non-null value of key in mapping m, or nil.
func value(m *yaml.Node, key string) *yaml.Node {
	if _, v := entry(m, key); v != nil && v.ShortTag() != "!!null" {
		return v
	}
	return nil
}

// findMerge returns the first merge key ("<<") under n, or nil. Merge keys would let
// a field arrive without appearing in its mapping, so defaults could not tell that
// it was set; a brain is small enough to write out.
func findMerge(n *yaml.Node) *yaml.Node {
	stack := []*yaml.Node{n}
	for len(stack) > 0 {
		n, stack = stack[len(stack)-1], stack[:len(stack)-1]
		if n.Kind == yaml.MappingNode {
			for i := 0; i+1 < len(n.Content); i += 2 {
				if n.Content[i].ShortTag() == "!!merge" {
					return n.Content[i]
				}
			}
		}
		stack = append(stack, n.Content...) // aliases point within the document: not followed
	}
	return nil
}

// lineOf is the line of the node at path (mapping keys and list indexes) under m,
// or of the deepest node on the way when the rest is missing.
func lineOf(m *yaml.Node, path []string) int {
	n := m
	for _, p := range path {
		var next *yaml.Node
		switch n.Kind {
		case yaml.MappingNode:
			k, v := entry(n, p)
			if v != nil && v.ShortTag() == "!!null" {
				next = k // a null value: point at its key
			} else {
				next = v
			}
		case yaml.SequenceNode:
			if i, err := strconv.Atoi(p); err == nil && i >= 0 && i < len(n.Content) {
				next = n.Content[i]
			}
		}
		if next == nil {
			break
		}
		n = next
	}
	return n.Line
}

// parserProblems are the messages of yaml.v3's parser errors (parserc.go), as
// opposed to its scanner errors.
var parserProblems = []string{
	"did not find expected",
	"found duplicate %YAML directive",
	"found incompatible YAML document",
	"found duplicate %TAG directive",
	"found undefined tag handle",
}

func isParserProblem(msg string) bool {
	for _, p := range parserProblems {
		if strings.HasPrefix(msg, p) {
			return true
		}
	}
	return false
}

var (
	lineRE    = regexp.MustCompile(`^line (\d+): (.*)$`)
	unknownRE = regexp.MustCompile(`^field (.*) not found in type brain\.(\w+)$`)
)

// yamlError turns a yaml.v3 error into one line, "file:LINE: message".
func yamlError(where string, err error) error {
	var msgs []string
	var te *yaml.TypeError
	if errors.As(err, &te) {
		msgs = te.Errors
	} else {
		msgs = []string{strings.TrimPrefix(err.Error(), "yaml: ")}
	}
	if len(msgs) == 0 {
		return fmt.Errorf("%s: %v", where, err)
	}
	msg := strings.ReplaceAll(msgs[0], "\n", " ")
	line := 0
	if m := lineRE.FindStringSubmatch(msg); m != nil {
		line, _ = strconv.Atoi(m[1])
		msg = m[2]
	}
	if isParserProblem(msg) {
		// yaml.v3 v3.0.1 counts the lines of parser (not scanner) errors from 0, and
		// leaves out line 0: the line it means is one more than it says.
		line++
	}
	loc := where
	if line > 0 {
		loc = fmt.Sprintf("%s:%d", where, line)
	}
	if m := unknownRE.FindStringSubmatch(msg); m != nil {
		msg = fmt.Sprintf("unknown field %q", m[1])
		if m[2] == "RateLimit" {
			msg += " in rate_limit"
		}
	}
	if len(msgs) > 1 {
		msg += fmt.Sprintf(" (and %d more problems)", len(msgs)-1)
	}
	return fmt.Errorf("%s: %s", loc, msg)
}
