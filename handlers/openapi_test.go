package handlers_test

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/gofiber/fiber/v2"
	"github.com/santhosh-tekuri/jsonschema/v6"
)

// apiDoc is the OpenAPI document the server serves, ready to check
// answers against: each operation's documented statuses and their
// schemas (JSON Schema 2020-12, as OpenAPI 3.1 writes them).
type apiDoc struct {
	raw   map[string]any
	paths []docPath
	mu    sync.Mutex
	c     *jsonschema.Compiler
	cache map[string]*jsonschema.Schema
}

// docPath is one of the document's paths and the pattern of the request
// paths it stands for.
type docPath struct {
	template string
	re       *regexp.Regexp
}

const docURL = "https://parley.invalid/api/v1/openapi.json"

// loadAPIDoc fetches the document from base, unauthenticated as any
// client would.
func loadAPIDoc(t *testing.T, base string) *apiDoc {
	t.Helper()
	resp, err := http.Get(base + "/api/v1/openapi.json")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json") {
		t.Fatalf("the document: %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	return parseAPIDoc(t, raw)
}

// parseAPIDoc reads the document.
func parseAPIDoc(t *testing.T, raw []byte) *apiDoc {
	t.Helper()
	d := &apiDoc{cache: map[string]*jsonschema.Schema{}, c: jsonschema.NewCompiler()}
	if err := json.Unmarshal(raw, &d.raw); err != nil {
		t.Fatalf("the document is not JSON: %v", err)
	}
	if d.raw["openapi"] != "3.1.0" {
		t.Fatalf("openapi %v, want 3.1.0", d.raw["openapi"])
	}
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(raw))
	if err != nil {
		t.Fatal(err)
	}
	d.c.AssertFormat()
	if err := d.c.AddResource(docURL, doc); err != nil {
		t.Fatal(err)
	}
	param := regexp.MustCompile(`\\\{[a-z_]+\\}`)
	for p := range d.raw["paths"].(map[string]any) {
		re := regexp.MustCompile("^/api/v1" + param.ReplaceAllString(regexp.QuoteMeta(p), "[^/]+") + "$")
		d.paths = append(d.paths, docPath{template: p, re: re})
	}
	// A path with fewer parameters wins (/messages/resend over /messages/{id}).
	sort.Slice(d.paths, func(i, j int) bool {
		return strings.Count(d.paths[i].template, "{") < strings.Count(d.paths[j].template, "{")
	})
	return d
}

// operations lists the document's operations as "METHOD /path".
func (d *apiDoc) operations() []string {
	var out []string
	for p, item := range d.raw["paths"].(map[string]any) {
		for method := range item.(map[string]any) {
			out = append(out, strings.ToUpper(method)+" "+p)
		}
	}
	sort.Strings(out)
	return out
}

// pointer escapes a JSON pointer's token.
func pointer(s string) string {
	return strings.NewReplacer("~", "~0", "/", "~1").Replace(s)
}

// check validates one answer of the API: its status must be documented
// for the operation, and its body must fit the documented schema (or be
// empty where none is documented).
func (d *apiDoc) check(t *testing.T, method, path string, status int, body []byte) {
	t.Helper()
	path, _, _ = strings.Cut(path, "?")
	var tmpl string
	for _, p := range d.paths {
		if p.re.MatchString(path) {
			tmpl = p.template
			break
		}
	}
	if tmpl == "" {
		t.Errorf("%s %s: no such path in the OpenAPI document", method, path)
		return
	}
	op, _ := d.raw["paths"].(map[string]any)[tmpl].(map[string]any)[strings.ToLower(method)].(map[string]any)
	if op == nil {
		t.Errorf("%s %s: the document has no %s on %s", method, path, method, tmpl)
		return
	}
	sch, documented, hasBody := d.response(t, tmpl, method, strconv.Itoa(status))
	switch {
	case !documented:
		t.Errorf("%s %s answered %d, which the document does not list (%s)", method, path, status, body)
		return
	case !hasBody:
		if len(bytes.TrimSpace(body)) != 0 {
			t.Errorf("%s %s %d: the document says no body, got %s", method, path, status, body)
		}
		return
	case sch == nil:
		return
	}
	v, err := jsonschema.UnmarshalJSON(bytes.NewReader(body))
	if err != nil {
		t.Errorf("%s %s %d: not JSON: %s", method, path, status, body)
		return
	}
	if err := sch.Validate(v); err != nil {
		t.Errorf("%s %s %d does not fit the document:\n%v\nbody: %s", method, path, status, err, body)
	}
}

// response finds an operation's documented answer for a status: its
// schema, compiled, and whether it has a body at all.
func (d *apiDoc) response(t *testing.T, tmpl, method, code string) (sch *jsonschema.Schema, documented, hasBody bool) {
	t.Helper()
	op, _ := d.raw["paths"].(map[string]any)[tmpl].(map[string]any)[strings.ToLower(method)].(map[string]any)
	r, ok := op["responses"].(map[string]any)[code].(map[string]any)
	if !ok {
		return nil, false, false
	}
	loc := "#/paths/" + pointer(tmpl) + "/" + strings.ToLower(method) + "/responses/" + code
	if ref, ok := r["$ref"].(string); ok {
		loc = ref
		r = d.raw["components"].(map[string]any)["responses"].(map[string]any)[strings.TrimPrefix(ref, "#/components/responses/")].(map[string]any)
	}
	content, ok := r["content"].(map[string]any)
	if !ok {
		return nil, true, false
	}
	if _, ok := content["application/json"]; !ok {
		return nil, true, true // a CSV: no JSON schema to check it against
	}
	return d.schema(t, loc+"/content/application~1json/schema"), true, true
}

// schema compiles (once) the schema at a pointer into the document.
func (d *apiDoc) schema(t *testing.T, ptr string) *jsonschema.Schema {
	t.Helper()
	d.mu.Lock()
	defer d.mu.Unlock()
	if s, ok := d.cache[ptr]; ok {
		return s
	}
	s, err := d.c.Compile(docURL + ptr)
	if err != nil {
		t.Errorf("the document's schema at %s: %v", ptr, err)
	}
	d.cache[ptr] = s
	return s
}

// routeTemplate writes a Fiber route as the document does: /x/:id<int>
// as /x/{id}, without the /api/v1 prefix.
func routeTemplate(path string) string {
	path = strings.TrimPrefix(path, "/api/v1")
	return regexp.MustCompile(`:([a-z_]+)(<[^>]*>)?`).ReplaceAllString(path, "{$1}")
}

// The document lists exactly the API's routes, and every schema in it
// compiles; every answer the API tests get is checked against it (see
// apiClient), so it cannot drift from what the server does.
func TestOpenAPI_DocumentsEveryRoute(t *testing.T) {
	s := newFullServer(t)
	doc := loadAPIDoc(t, s.base)
	var registered []string
	seen := map[string]bool{}
	for _, r := range s.app.GetRoutes(true) {
		if !strings.HasPrefix(r.Path, "/api/v1/") || r.Method == fiber.MethodHead || r.Method == fiber.MethodOptions {
			continue
		}
		key := r.Method + " " + routeTemplate(r.Path)
		if !seen[key] {
			seen[key] = true
			registered = append(registered, key)
		}
	}
	sort.Strings(registered)
	documented := doc.operations()
	if strings.Join(registered, "\n") != strings.Join(documented, "\n") {
		t.Fatalf("routes and document differ\nregistered:\n%s\n\ndocumented:\n%s", strings.Join(registered, "\n"), strings.Join(documented, "\n"))
	}
	// Every documented answer's schema compiles.
	for p, item := range doc.raw["paths"].(map[string]any) {
		for method, op := range item.(map[string]any) {
			if op.(map[string]any)["operationId"] == nil {
				t.Errorf("%s %s has no operationId", method, p)
			}
			for code := range op.(map[string]any)["responses"].(map[string]any) {
				if _, documented, _ := doc.response(t, p, method, code); !documented {
					t.Errorf("%s %s %s: a response that does not resolve", method, p, code)
				}
			}
		}
	}
	if t.Failed() {
		return
	}
	// Errors have one shape with a stable code, whoever answers: the
	// router (no such route, wrong method) or a handler.
	for _, tc := range []struct {
		method, path string
		status       int
		code         string
	}{
		{"GET", "/api/v1/me", 401, "unauthorized"},
		{"GET", "/api/v1/nothing-here", 401, "unauthorized"},
	} {
		req, _ := http.NewRequest(tc.method, s.base+tc.path, nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		var e struct {
			Error struct{ Code, Message string }
		}
		if resp.StatusCode != tc.status || json.Unmarshal(body, &e) != nil || e.Error.Code != tc.code || e.Error.Message == "" {
			t.Errorf("%s %s: %d %s, want %d with code %s", tc.method, tc.path, resp.StatusCode, body, tc.status, tc.code)
		}
	}
}
