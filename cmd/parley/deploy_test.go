package main

import (
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclparse"
	"github.com/hashicorp/hcl/v2/hclsyntax"
	"github.com/zclconf/go-cty/cty"
	"github.com/zclconf/go-cty/cty/convert"
	"github.com/zclconf/go-cty/cty/function"

	"github.com/parley-chat/parley/internal/auth/authtest"
	"github.com/parley-chat/parley/internal/channel/twilio/twiliotest"
	"github.com/parley-chat/parley/internal/pgtest"
)

// deploy/README.md's steps as a new operator takes them, against the
// fakes where Google, Supabase and Twilio would be: the keys each from its
// own `keys generate`, the service's environment exactly as the module
// sets it from terraform.tfvars.example (this machine's URLs in place of
// the example's), the migrate job, the first admin in Supabase mode, the
// service starting, and Twilio's webhook answered at the public URL with
// statuses asked for at /webhooks/twilio/status. (gcloud, docker and
// terraform apply cannot run here.)
func TestDeploy_READMEWalkAgainstTheFakes(t *testing.T) {
	supabase := authtest.NewProject()
	t.Cleanup(supabase.Close)
	const twilioToken = "0123456789abcdef0123456789abcdef"
	twilioAPI := twiliotest.NewAPI(e2eAccountSID, twilioToken)
	t.Cleanup(twilioAPI.Close)
	addr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	publicURL := "http://" + addr

	// Step 5: the eight secrets.
	secrets := map[string]string{
		"DATABASE_URL":      pgtest.DSN(t),
		"SUPABASE_ANON_KEY": authtest.AnonKey, "SUPABASE_SERVICE_ROLE_KEY": authtest.ServiceRoleKey,
		"PARLEY_TWILIO_ACCOUNT_SID": e2eAccountSID, "PARLEY_TWILIO_AUTH_TOKEN": twilioToken,
	}
	for name, kind := range map[string]string{"PARLEY_ENCRYPTION_KEYS": "encryption", "PARLEY_BLIND_INDEX_KEY": "blind-index", "PARLEY_SESSION_KEYS": "session"} {
		code, out, stderr := runCmd(t, nil, "keys", "generate", kind)
		if code != exitOK || strings.Count(out, "\n") != 1 {
			t.Fatalf("keys generate %s: %d %q %s", kind, code, out, stderr)
		}
		secrets[name] = strings.TrimSpace(out) // printf %s "$(…)"
	}
	module := moduleLocals(t, map[string]cty.Value{"public_url": cty.StringVal(publicURL), "supabase_url": cty.StringVal(supabase.URL)})
	if len(module.secrets) != len(secrets) {
		t.Fatalf("the module reads %v; the walk made %d secrets", module.secrets, len(secrets))
	}
	// Step 6: the service's environment, as the module gives it.
	env := map[string]string{}
	for name := range module.secrets {
		value, ok := secrets[name]
		if !ok {
			t.Fatalf("the module reads %s, which step 5 does not make", name)
		}
		env[name] = value
	}
	for k, v := range module.env {
		env[k] = v
	}
	env["PARLEY_ADDR"] = addr                                                  // Cloud Run's port, here a free one
	env["PARLEY_TWILIO_API_BASE_URL"] = twilioAPI.URL                          // the fake in Twilio's place
	env["PARLEY_SHUTDOWN_GRACE"], env["PARLEY_JOB_RESCUE_AFTER"] = "1s", "40s" // the test stops it

	// Without a sender, the revision does not start, and says why.
	noSender := map[string]string{}
	for k, v := range env {
		noSender[k] = v
	}
	delete(noSender, "PARLEY_TWILIO_FROM")
	if code, _, stderr := runCmd(t, noSender, "serve"); code != exitUsage || !strings.Contains(stderr, "PARLEY_TWILIO_FROM") {
		t.Fatalf("serve without a Twilio sender: %d %s", code, stderr)
	}

	// Step 7: the migrate job (its only setting is DATABASE_URL).
	if code, _, stderr := runCmd(t, map[string]string{"DATABASE_URL": env["DATABASE_URL"]}, "migrate", "up"); code != exitOK {
		t.Fatalf("migrate up: %d %s", code, stderr)
	}
	// Step 8: the first admin, with the settings step 8 exports.
	admin := map[string]string{"PARLEY_AUTH_MODE": "supabase", "SUPABASE_URL": supabase.URL}
	for _, k := range []string{"DATABASE_URL", "PARLEY_ENCRYPTION_KEYS", "PARLEY_BLIND_INDEX_KEY", "PARLEY_SESSION_KEYS", "SUPABASE_ANON_KEY", "SUPABASE_SERVICE_ROLE_KEY"} {
		admin[k] = env[k]
	}
	if code, _, stderr := runCmd(t, admin, "users", "create", "--email", "you@example.org", "--role", "admin", "--invite"); code != exitOK {
		t.Fatalf("users create --invite: %d %s", code, stderr)
	}
	if code, out, stderr := runCmd(t, admin, "users", "list"); code != exitOK || !strings.Contains(out, "you@example.org") || !strings.Contains(out, "admin") {
		t.Fatalf("users list: %d %s %s", code, out, stderr)
	}

	// The service starts, ready, with no metrics on its public address.
	in := start(t, env, "serve")
	if code, body := get(t, publicURL+"/readyz"); code != http.StatusOK || !strings.Contains(body, `"ready"`) {
		t.Fatalf("/readyz = %d %s", code, body)
	}
	if code, _ := get(t, publicURL+"/metrics"); code != http.StatusNotFound {
		t.Fatalf("/metrics without a token = %d, want 404", code)
	}
	// Step 9: Twilio calls the webhook URL, signed over it; the reply goes
	// out asking for statuses at the status URL.
	if code := postTwilio(publicURL, twilioToken, "+919876543210", "hello", 1); code != http.StatusOK {
		t.Fatalf("the Twilio webhook = %d", code)
	}
	deadline := time.Now().Add(30 * time.Second)
	for len(twilioAPI.Sent()) == 0 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond) // polling interval, not synchronisation
	}
	sent := twilioAPI.Sent()
	if len(sent) == 0 || sent[0].StatusCallback != publicURL+"/webhooks/twilio/status" || sent[0].From != strings.TrimPrefix(env["PARLEY_TWILIO_FROM"], "whatsapp:") { // an SMS: the plain number
		t.Fatalf("sent %+v: want the flow's reply from the module's sender, statuses asked for at %s/webhooks/twilio/status", sent, publicURL)
	}
	if code := in.stop(t); code != exitOK {
		t.Fatalf("exit %d", code)
	}
}

// locals is what the module hands the service: its environment and the
// variables it reads from secrets.
type locals struct {
	env     map[string]string
	secrets map[string]string // variable → secret id
}

// moduleLocals evaluates deploy/terraform's locals with the variables of
// terraform.tfvars.example over their defaults, and set over those.
func moduleLocals(t *testing.T, set map[string]cty.Value) locals {
	t.Helper()
	parser := hclparse.NewParser()
	body := func(name string) *hclsyntax.Body {
		file := filepath.Join(terraformDir, name)
		src, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		f, diags := parser.ParseHCL(src, file)
		if diags.HasErrors() {
			t.Fatal(diags.Error())
		}
		return f.Body.(*hclsyntax.Body)
	}
	literal := func(e hcl.Expression) cty.Value {
		v, diags := e.Value(nil)
		if diags.HasErrors() {
			t.Fatal(diags.Error())
		}
		return v
	}
	vars := map[string]cty.Value{}
	for _, b := range body("variables.tf").Blocks {
		if d, ok := b.Body.Attributes["default"]; ok && b.Type == "variable" {
			vars[b.Labels[0]] = literal(d.Expr)
		}
	}
	for name, a := range body("terraform.tfvars.example").Attributes {
		vars[name] = literal(a.Expr)
	}
	for name, v := range set {
		vars[name] = v
	}
	tostring := function.New(&function.Spec{
		Params: []function.Parameter{{Name: "v", Type: cty.DynamicPseudoType}},
		Type:   function.StaticReturnType(cty.String),
		Impl:   func(args []cty.Value, _ cty.Type) (cty.Value, error) { return convert.Convert(args[0], cty.String) },
	})
	ctx := &hcl.EvalContext{Variables: map[string]cty.Value{"var": cty.ObjectVal(vars)}, Functions: map[string]function.Function{"tostring": tostring}}
	out := locals{env: map[string]string{}, secrets: map[string]string{}}
	for _, b := range body("main.tf").Blocks {
		if b.Type != "locals" {
			continue
		}
		for name, into := range map[string]map[string]string{"env": out.env, "secrets": out.secrets} {
			a, ok := b.Body.Attributes[name]
			if !ok {
				t.Fatalf("main.tf has no locals.%s", name)
			}
			v, diags := a.Expr.Value(ctx)
			if diags.HasErrors() {
				t.Fatalf("locals.%s: %s", name, diags.Error())
			}
			for k, s := range v.AsValueMap() {
				into[k] = s.AsString()
			}
		}
	}
	return out
}
