package engine

import (
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

//go:embed flows/*.yaml
var builtin embed.FS

// Library holds the flows Parley runs: the current version of each, and
// every version a conversation may still be pinned to.
type Library struct {
	current  map[string]*Flow
	versions map[string]*Flow // by id + "@" + version
	order    []string
}

// NewLibrary returns a library of the given flows; the first by id is the
// default.
func NewLibrary(flows ...*Flow) *Library {
	l := &Library{current: map[string]*Flow{}, versions: map[string]*Flow{}}
	for _, f := range flows {
		l.Add(f)
	}
	return l
}

// Builtin returns the sample flows shipped in the binary, used when
// PARLEY_FLOWS_DIR is unset.
func Builtin() *Library {
	l, err := loadFS(builtin, "flows")
	if err != nil {
		panic("engine: built-in flows are invalid: " + err.Error()) // a test proves they are not
	}
	return l
}

// LoadDir reads every *.yaml, *.yml and *.json file of dir (JSON is read
// as the YAML it also is). It returns every
// problem found, one per line, naming file, node and problem.
func LoadDir(dir string) (*Library, error) {
	if fi, err := os.Stat(dir); err != nil || !fi.IsDir() {
		return nil, fmt.Errorf("%s is not a readable folder of flow files", dir)
	}
	l, err := loadFS(os.DirFS(dir), ".")
	if errors.Is(err, errNoFlows) {
		return nil, fmt.Errorf("%s: %w", dir, err)
	}
	return l, err
}

// errNoFlows says a folder holds no flow file.
var errNoFlows = errors.New("no flow files (*.yaml, *.yml, *.json) found")

func loadFS(fsys fs.FS, dir string) (*Library, error) {
	entries, err := fs.ReadDir(fsys, dir)
	if err != nil {
		return nil, err
	}
	l := NewLibrary()
	var errs []error
	for _, e := range entries {
		name := e.Name()
		if e.IsDir() || !isFlowFile(name) {
			continue
		}
		data, err := fs.ReadFile(fsys, filepath.Join(dir, name))
		if err != nil {
			errs = append(errs, err)
			continue
		}
		f, err := Parse(name, data)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if other, dup := l.current[f.ID]; dup {
			errs = append(errs, &Error{File: name, Problem: fmt.Sprintf("flow id %q is also used by %s", f.ID, other.File)})
			continue
		}
		l.Add(f)
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	if len(l.current) == 0 {
		return nil, errNoFlows
	}
	return l, nil
}

// Add makes f the current version of its id, keeping older versions.
func (l *Library) Add(f *Flow) {
	if _, ok := l.current[f.ID]; !ok {
		l.order = append(l.order, f.ID)
		sort.Strings(l.order)
	}
	l.current[f.ID] = f
	l.versions[f.ID+"@"+f.Version] = f
}

// Flows returns the current flows by id.
func (l *Library) Flows() []*Flow {
	out := make([]*Flow, len(l.order))
	for i, id := range l.order {
		out[i] = l.current[id]
	}
	return out
}

// Pin keeps an older version of a flow (one a conversation started on,
// read back from the database) without making it current.
func (l *Library) Pin(f *Flow) { l.versions[f.ID+"@"+f.Version] = f }

// Current returns the current version of a flow, or nil.
func (l *Library) Current(id string) *Flow { return l.current[id] }

// Version returns a flow at a pinned version, or nil when this library no
// longer has it.
func (l *Library) Version(id, version string) *Flow { return l.versions[id+"@"+version] }

// Default is the flow new conversations start on: the first by id.
func (l *Library) Default() *Flow {
	if len(l.order) == 0 {
		return nil
	}
	return l.current[l.order[0]]
}

func isFlowFile(name string) bool {
	for _, ext := range []string{".yaml", ".yml", ".json"} {
		if strings.HasSuffix(name, ext) {
			return true
		}
	}
	return false
}
