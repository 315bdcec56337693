package policy

import (
	"bytes"
	"crypto/sha256"
	_ "embed"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"unicode"

	"github.com/cedar-policy/cedar-go"
	"github.com/cedar-policy/cedar-go/types"
	"github.com/sios-project/sios/internal/files"
)

//go:embed default.cedar
var defaultPolicies []byte

// Defaults returns the text of the embedded default policy set (docs/policy.md).
func Defaults() []byte { return bytes.Clone(defaultPolicies) }

// Dir is the directory under the data directory that holds the policy files.
const Dir = "policies"

// DefaultFile is the name WriteDefaults gives the default policy set in Dir.
const DefaultFile = "default.cedar"

// builtinName names the embedded default set in errors and explanations.
const builtinName = "(built-in) " + DefaultFile

// WriteDefaults writes the default policy set to dataDir/policies/default.cedar if
// dataDir/policies does not exist yet. It never overwrites: once the directory exists,
// even empty, it belongs to the operator. The directory appears whole or not at all.
func WriteDefaults(dataDir string) error {
	dir := filepath.Join(dataDir, Dir)
	if _, err := os.Lstat(dir); err == nil || !errors.Is(err, os.ErrNotExist) {
		return err
	}
	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		return err
	}
	tmp, err := os.MkdirTemp(dataDir, "."+Dir+".tmp*")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	if err := os.Chmod(tmp, 0o755); err != nil {
		return err
	}
	if err := files.WriteNew(filepath.Join(tmp, DefaultFile), defaultPolicies, 0o644); err != nil {
		return err
	}
	if err := files.SyncDir(tmp); err != nil {
		return err
	}
	if err := os.Rename(tmp, dir); err != nil {
		if _, serr := os.Lstat(dir); serr == nil {
			return nil // made meanwhile by someone else: theirs stands
		}
		return err
	}
	return files.SyncDir(dataDir)
}

// Load reads every *.cedar file in dataDir/policies, in name order; files whose names
// start with "." are ignored (editor backups, locks). If the directory does not exist it
// loads the embedded default set. Any problem is an error naming the file (and line
// where there is one): a syntax error, a policy without a unique @id, a file over
// MaxPolicyFileSize, more than MaxPolicies policies, a directory without policy files.
func Load(dataDir string) (*Engine, error) {
	dir := filepath.Join(dataDir, Dir)
	ents, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return newEngine([]source{{name: builtinName, text: defaultPolicies}})
	}
	if err != nil {
		return nil, err
	}
	var srcs []source
	for _, ent := range ents {
		name := ent.Name()
		if !strings.HasSuffix(name, ".cedar") || strings.HasPrefix(name, ".") {
			continue
		}
		path := filepath.Join(dir, name)
		text, err := readPolicyFile(path)
		if err != nil {
			return nil, err
		}
		srcs = append(srcs, source{name: path, text: text})
	}
	if len(srcs) == 0 {
		return nil, fmt.Errorf("%s holds no *.cedar policy files: every request would be denied (remove the directory to use the built-in defaults)", dir)
	}
	return newEngine(srcs)
}

// LoadBytes builds an engine from policy text alone, as if it were the file name: for
// checking a policy file before installing it, and for tests.
func LoadBytes(name string, text []byte) (*Engine, error) {
	if len(text) > MaxPolicyFileSize {
		return nil, fmt.Errorf("%s: larger than %d bytes (MaxPolicyFileSize)", name, MaxPolicyFileSize)
	}
	return newEngine([]source{{name: name, text: text}})
}

func readPolicyFile(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if !st.Mode().IsRegular() {
		return nil, fmt.Errorf("%s: not a regular file", path)
	}
	text, err := io.ReadAll(io.LimitReader(f, MaxPolicyFileSize+1))
	if err != nil {
		return nil, err
	}
	if len(text) > MaxPolicyFileSize {
		return nil, fmt.Errorf("%s: larger than %d bytes (MaxPolicyFileSize)", path, MaxPolicyFileSize)
	}
	return text, nil
}

type source struct {
	name string // path, or builtinName
	text []byte
}

func newEngine(srcs []source) (*Engine, error) {
	e := &Engine{
		set:     cedar.NewPolicySet(),
		permits: cedar.NewPolicySet(),
		info:    make(map[types.PolicyID]policyInfo),
	}
	h := sha256.New()
	for _, src := range srcs {
		fmt.Fprintf(h, "%s\n%d\n", filepath.Base(src.name), len(src.text))
		h.Write(src.text)
		list, err := cedar.NewPolicyListFromBytes(src.name, src.text)
		if err != nil {
			return nil, parseError(src, err)
		}
		if len(e.info)+len(list) > MaxPolicies {
			return nil, fmt.Errorf("%s: more than %d policies in all (MaxPolicies)", src.name, MaxPolicies)
		}
		for _, p := range list {
			pos := p.Position()
			at := fmt.Sprintf("%s:%d:%d", src.name, pos.Line, pos.Column)
			ann := p.Annotations()
			id, ok := ann["id"]
			if !ok {
				return nil, fmt.Errorf("%s: policy has no @id(\"…\") annotation: decisions and audit records name policies by it", at)
			}
			if err := checkID(string(id)); err != nil {
				return nil, fmt.Errorf("%s: @id(%q) %v", at, id, err)
			}
			pid := types.PolicyID(id)
			if prev, dup := e.info[pid]; dup {
				return nil, fmt.Errorf("%s: duplicate policy @id(%q): already defined at %s", at, id, prev.where())
			}
			e.info[pid] = policyInfo{effect: p.Effect(), pos: pos, description: string(ann["description"])}
			e.set.Add(pid, p)
			if p.Effect() == cedar.Permit {
				e.permits.Add(pid, p)
			}
		}
	}
	e.digest = hex.EncodeToString(h.Sum(nil))
	e.indexByAction()
	return e, nil
}

func checkID(id string) error {
	switch {
	case id == "":
		return errors.New("is empty")
	case len(id) > MaxPolicyIDLen:
		return fmt.Errorf("is longer than %d bytes (MaxPolicyIDLen)", MaxPolicyIDLen)
	case strings.IndexFunc(id, func(r rune) bool { return unicode.IsControl(r) || unicode.IsSpace(r) }) >= 0:
		return errors.New("contains a space or control character")
	}
	return nil
}

// cedarPos matches the position cedar-go puts in its parse errors; it always says
// "<input>", never the file name.
var cedarPos = regexp.MustCompile(`<input>:(\d+):(\d+):? ?`)

// parseError rewrites a cedar-go parse error so that it starts with file:line:column.
// Some cedar-go errors carry no position (an out-of-range number, a bad string escape
// found after scanning); for those the line is found by parsing ever longer prefixes of
// the file: the first line whose prefix gives the same error holds its cause.
func parseError(src source, err error) error {
	msg := strings.TrimPrefix(err.Error(), "parser error: ")
	if m := cedarPos.FindStringSubmatchIndex(msg); m != nil {
		line, col := msg[m[2]:m[3]], msg[m[4]:m[5]]
		if line != "0" {
			rest := strings.TrimSpace(msg[:m[0]] + msg[m[1]:])
			return fmt.Errorf("%s:%s:%s: %s", src.name, line, col, rest)
		}
	}
	return fmt.Errorf("%s:%d: %s", src.name, errorLine(src.text, err.Error()), cedarPos.ReplaceAllString(msg, ""))
}

// errorLine returns the first line n such that parsing lines 1..n fails with want.
func errorLine(text []byte, want string) int {
	lines := bytes.Count(text, []byte("\n")) + 1
	failsAt := func(n int) bool { // parse lines 1..n
		end := len(text)
		if i := nthIndex(text, '\n', n); i >= 0 {
			end = i + 1
		}
		_, err := cedar.NewPolicyListFromBytes("", text[:end])
		return err != nil && err.Error() == want
	}
	lo, hi := 1, lines // the answer is in [lo, hi]
	for lo < hi {
		mid := lo + (hi-lo)/2
		if failsAt(mid) {
			hi = mid
		} else {
			lo = mid + 1
		}
	}
	return lo
}

// nthIndex returns the index of the nth occurrence of c in b, or -1.
func nthIndex(b []byte, c byte, n int) int {
	off := 0
	for ; n > 0; n-- {
		i := bytes.IndexByte(b[off:], c)
		if i < 0 {
			return -1
		}
		off += i + 1
	}
	return off - 1
}
