package roles

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/sios-project/sios/internal/files"
)

// MarksFile is where a node keeps what it has recorded of the steps it derives (inside
// its roles directory).
const MarksFile = "marks.json"

const marksVersion = "sios-role-marks/1"

// marks are the derived steps this node has recorded: each is recorded once, and a
// restart does not record it again. Sets are kept in the order marked; each is capped
// at MaxMarks, forgetting the oldest (which at worst records a step again).
type marks struct {
	path string
	sets map[string][]string // by set name
	has  map[string]bool     // set name + "\n" + key
}

// The sets.
const (
	markHandover = "handovers" // certificate hashes
	markCascade  = "cascades"  // certificate hash + "/" + index of the successor whose offer ended
	markRelease  = "released"  // letter hashes whose share this node released
	markReject   = "rejected"  // hashes of documents recorded as role.reject
	markChecked  = "checked"   // letter hashes whose own share this node checked on receipt
)

type marksFile struct {
	V    string              `json:"v"`
	Sets map[string][]string `json:"sets"`
}

func openMarks(dir string) (*marks, error) {
	m := &marks{path: filepath.Join(dir, MarksFile), sets: map[string][]string{}, has: map[string]bool{}}
	b, err := files.ReadFileCapped(m.path, MaxMarksFile, "MaxMarksFile")
	if errors.Is(err, os.ErrNotExist) {
		return m, nil
	}
	if err != nil {
		return nil, err
	}
	var f marksFile
	if err := json.Unmarshal(b, &f); err != nil || f.V != marksVersion {
		return nil, fmt.Errorf("%s is not a %s file (remove it to record derived role steps again): %v", m.path, marksVersion, err)
	}
	for name, keys := range f.Sets {
		for _, k := range keys {
			m.add(name, k)
		}
	}
	return m, nil
}

func (m *marks) marked(set, key string) bool { return m.has[set+"\n"+key] }

func (m *marks) add(set, key string) {
	if m.has[set+"\n"+key] {
		return
	}
	l := append(m.sets[set], key)
	if len(l) > MaxMarks {
		delete(m.has, set+"\n"+l[0])
		l = l[1:]
	}
	m.sets[set] = l
	m.has[set+"\n"+key] = true
}

// mark adds key to set and saves the marks.
func (m *marks) mark(set, key string) error {
	m.add(set, key)
	b, err := json.Marshal(marksFile{V: marksVersion, Sets: m.sets})
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(m.path), 0o700); err != nil {
		return err
	}
	return files.Replace(m.path, b, 0o600)
}
