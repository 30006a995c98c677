package main

import (
	"bytes"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclparse"
	"github.com/hashicorp/hcl/v2/hclsyntax"
	"github.com/hashicorp/hcl/v2/hclwrite"
)

// terraformDir is the deployment module.
var terraformDir = filepath.Join("..", "..", "deploy", "terraform")

// The Terraform module parses as HCL and is formatted as `terraform fmt`
// writes it (hclwrite is its formatter), checked by HashiCorp's own parser
// so the test runs everywhere, terraform installed or not (its providers
// cannot be fetched here, so no init or validate).
func TestTerraform_ParsesAndIsFormatted(t *testing.T) {
	files, err := filepath.Glob(filepath.Join(terraformDir, "*.tf"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no Terraform files in %s: %v", terraformDir, err)
	}
	files = append(files, filepath.Join(terraformDir, "terraform.tfvars.example"))
	parser := hclparse.NewParser()
	for _, file := range files {
		src, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		if _, diags := parser.ParseHCL(src, file); diags.HasErrors() {
			t.Errorf("%s does not parse: %s", file, diags.Error())
		}
		if formatted := hclwrite.Format(src); !bytes.Equal(formatted, src) {
			t.Errorf("%s is not formatted as terraform fmt writes it; want:\n%s", file, formatted)
		}
	}
}

// deploy/README.md's step 5 creates exactly the secrets the module reads:
// a secret the module reads and nobody created stops the service at its
// first revision.
func TestTerraform_READMECreatesTheModulesSecrets(t *testing.T) {
	file := filepath.Join(terraformDir, "main.tf")
	src, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	f, diags := hclparse.NewParser().ParseHCL(src, file)
	if diags.HasErrors() {
		t.Fatal(diags.Error())
	}
	var module []string
	for _, block := range f.Body.(*hclsyntax.Body).Blocks {
		if block.Type != "locals" {
			continue
		}
		if attr, ok := block.Body.Attributes["secrets"]; ok {
			v, diags := attr.Expr.Value(&hcl.EvalContext{})
			if diags.HasErrors() {
				t.Fatalf("locals.secrets is not a literal map: %s", diags.Error())
			}
			for _, id := range v.AsValueMap() {
				module = append(module, id.AsString())
			}
		}
	}
	readme, err := os.ReadFile(filepath.Join("..", "..", "deploy", "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	// Step 5 creates them, each with `secret NAME VALUE` (its helper
	// around gcloud secrets create).
	_, step, _ := strings.Cut(string(readme), "### 5. Create the eight secrets")
	step, _, _ = strings.Cut(step, "\n### ")
	if !strings.Contains(step, `secret() { printf %s "$2" | gcloud secrets create "$1"`) {
		t.Fatalf("deploy/README.md's step 5 lost its helper:\n%s", step)
	}
	var created []string
	for _, m := range regexp.MustCompile(`(?m)^secret (parley-[a-z0-9-]+) `).FindAllStringSubmatch(step, -1) {
		if !slices.Contains(created, m[1]) {
			created = append(created, m[1])
		}
	}
	sort.Strings(module)
	sort.Strings(created)
	if len(module) != 8 || !slices.Equal(module, created) {
		t.Fatalf("the module reads the secrets %q; deploy/README.md creates %q", module, created)
	}
}
