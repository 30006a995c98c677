package models

import (
	"strings"
	"testing"
)

func TestTemplate_Render(t *testing.T) {
	numbered := &Template{Name: "appointment_reminder", Language: "en", Body: "Hi {{1}}, your appointment is at {{2}}. Reply {{ 1 }}?"}
	named := &Template{Name: "results", Language: "en", Body: "Hello {{name}}, results for {{test}} are in."}
	cases := []struct {
		label   string
		tpl     *Template
		params  map[string]string
		want    string
		wantErr string
	}{
		{"numbered", numbered, map[string]string{"1": "Asha", "2": "10:00"}, "Hi Asha, your appointment is at 10:00. Reply Asha?", ""},
		{"named", named, map[string]string{"name": "Asha", "test": "CBC"}, "Hello Asha, results for CBC are in.", ""},
		{"one missing", numbered, map[string]string{"1": "Asha"}, "", "takes 2 parameters; {{2}} not filled"},
		{"blank counts as missing", numbered, map[string]string{"1": "Asha", "2": " "}, "", "{{2}} not filled"},
		{"one too many", numbered, map[string]string{"1": "Asha", "2": "10", "3": "x"}, "", "it has no {{3}}"},
		{"none", &Template{Body: "Plain."}, nil, "Plain.", ""},
	}
	for _, c := range cases {
		t.Run(c.label, func(t *testing.T) {
			got, err := c.tpl.Render(c.params)
			if c.wantErr != "" {
				if ErrorCode(err) != EINVALID || !strings.Contains(err.Error(), c.wantErr) {
					t.Fatalf("Render error = %v, want EINVALID with %q", err, c.wantErr)
				}
				if strings.Contains(err.Error(), "Asha") {
					t.Fatalf("the error quotes a value: %v", err)
				}
				return
			}
			if err != nil || got != c.want {
				t.Fatalf("Render = %q, %v; want %q", got, err, c.want)
			}
		})
	}
	if !numbered.Numbered() || named.Numbered() {
		t.Fatal("Numbered wrong")
	}
}
