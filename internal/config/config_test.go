package config_test

import (
	"bytes"
	"encoding/base64"
	"errors"
	"strings"
	"testing"

	"github.com/parley-chat/parley/internal/config"
)

func b64(fill byte, n int) string {
	return base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{fill}, n))
}

func validEnv() map[string]string {
	return map[string]string{
		"DATABASE_URL":           "postgres://parley:pw@db.example.org:5432/parley?sslmode=require",
		"PARLEY_ENCRYPTION_KEYS": "k2:" + b64(2, 32) + ",k1:" + b64(1, 32),
		"PARLEY_BLIND_INDEX_KEY": b64(9, 32),
		"PARLEY_SESSION_KEYS":    b64(3, 32) + ":" + b64(4, 32),
	}
}

func load(env map[string]string, req config.Requirements) (*config.Config, error) {
	return config.Load(func(k string) string { return env[k] }, req)
}

var all = config.Requirements{Database: true, Keys: true}

func TestLoad_ValidEnvironment(t *testing.T) {
	env := validEnv()
	env["PARLEY_DEFAULT_REGION"] = "in"
	env["PARLEY_PUBLIC_URL"] = "https://parley.example.org/"
	c, err := load(env, all)
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	if len(c.EncryptionKeys) != 2 || c.EncryptionKeys[0].ID != "k2" || !bytes.Equal(c.EncryptionKeys[1].Secret, bytes.Repeat([]byte{1}, 32)) {
		t.Errorf("EncryptionKeys = %+v, want k2 (active) then k1", c.EncryptionKeys)
	}
	if len(c.SessionKeys) != 1 || c.SessionKeys[0].BlockKey[0] != 4 {
		t.Errorf("SessionKeys = %+v", c.SessionKeys)
	}
	if c.Addr != ":8080" || c.AuthMode != "local" || c.DefaultRegion != "IN" || c.PublicURL != "https://parley.example.org" {
		t.Errorf("defaults and normalisation: addr %q, auth %q, region %q, public %q", c.Addr, c.AuthMode, c.DefaultRegion, c.PublicURL)
	}
}

func TestLoad_ReportsEveryProblemNamingTheVariable(t *testing.T) {
	tests := []struct {
		name string
		set  map[string]string
		req  config.Requirements
		want []string
	}{
		{"database required", map[string]string{"DATABASE_URL": ""}, all, []string{"DATABASE_URL is not set"}},
		{"database optional", map[string]string{"DATABASE_URL": ""}, config.Requirements{Keys: true}, nil},
		{"keys optional for migrate", map[string]string{"PARLEY_ENCRYPTION_KEYS": "", "PARLEY_BLIND_INDEX_KEY": "", "PARLEY_SESSION_KEYS": ""}, config.Requirements{Database: true}, nil},
		{"duplicate key id", map[string]string{"PARLEY_ENCRYPTION_KEYS": "k1:" + b64(1, 32) + ",k1:" + b64(2, 32)}, all, []string{`key id "k1" appears twice`}},
		{"key of 16 bytes", map[string]string{"PARLEY_ENCRYPTION_KEYS": "k1:" + b64(1, 16)}, all, []string{"PARLEY_ENCRYPTION_KEYS entry 1 (key id \"k1\") is not base64 of exactly 32 bytes"}},
		{"bad key id", map[string]string{"PARLEY_ENCRYPTION_KEYS": "k 1:" + b64(1, 32)}, all, []string{"no valid key id"}},
		{"blind index key short", map[string]string{"PARLEY_BLIND_INDEX_KEY": b64(1, 31)}, all, []string{"PARLEY_BLIND_INDEX_KEY is not base64 of exactly 32 bytes"}},
		{"session key missing half", map[string]string{"PARLEY_SESSION_KEYS": b64(1, 32)}, all, []string{"PARLEY_SESSION_KEYS entry 1"}},
		{"region", map[string]string{"PARLEY_DEFAULT_REGION": "India"}, all, []string{"PARLEY_DEFAULT_REGION"}},
		{"time zone", map[string]string{"PARLEY_TIME_ZONE": "India/Delhi"}, all, []string{"PARLEY_TIME_ZONE is not a time zone name"}},
		{"auth mode", map[string]string{"PARLEY_AUTH_MODE": "ldap"}, all, []string{"PARLEY_AUTH_MODE must be supabase or local"}},
		{"supabase needs its URL and key", map[string]string{"PARLEY_AUTH_MODE": "supabase"}, all, []string{"SUPABASE_URL is required", "SUPABASE_ANON_KEY is required"}},
		{"twilio sid", map[string]string{"PARLEY_TWILIO_ACCOUNT_SID": "SK123", "PARLEY_TWILIO_AUTH_TOKEN": "x", "PARLEY_PUBLIC_URL": "https://p.example.org", "PARLEY_TWILIO_FROM": "+14155550100"}, all, []string{"PARLEY_TWILIO_ACCOUNT_SID is not an account SID"}},
		{"rescue before the longest job ends", map[string]string{"PARLEY_JOB_TIMEOUT": "30s", "PARLEY_JOB_RESCUE_AFTER": "45s"}, all,
			[]string{"PARLEY_JOB_RESCUE_AFTER must be longer than twice PARLEY_JOB_TIMEOUT"}},
		{"events without a secret", map[string]string{"PARLEY_EVENTS_URL": "https://crm.example.org/parley"}, all,
			[]string{"PARLEY_EVENTS_SECRET must be at least 32 characters"}},
		{"twilio token", map[string]string{"PARLEY_TWILIO_ACCOUNT_SID": "AC" + strings.Repeat("0", 32), "PARLEY_PUBLIC_URL": "https://p.example.org", "PARLEY_TWILIO_FROM": "+14155550100"}, all, []string{"PARLEY_TWILIO_AUTH_TOKEN is required"}},
		{"rescue before the longest job ends", map[string]string{"PARLEY_JOB_TIMEOUT": "30s", "PARLEY_JOB_RESCUE_AFTER": "45s"}, all,
			[]string{"PARLEY_JOB_RESCUE_AFTER must be longer than twice PARLEY_JOB_TIMEOUT"}},
		{"events without a secret", map[string]string{"PARLEY_EVENTS_URL": "https://crm.example.org/parley"}, all,
			[]string{"PARLEY_EVENTS_SECRET must be at least 32 characters"}},
		{"twilio token", map[string]string{"PARLEY_TWILIO_ACCOUNT_SID": "AC" + strings.Repeat("0", 32), "PARLEY_TWILIO_AUTH_TOKEN": "e2e-token",
			"PARLEY_PUBLIC_URL": "https://p.example.org", "PARLEY_TWILIO_FROM": "+14155550100"}, all, []string{"PARLEY_TWILIO_AUTH_TOKEN holds characters other than letters and digits"}},
		{"twilio without a public URL", map[string]string{"PARLEY_TWILIO_ACCOUNT_SID": "AC" + strings.Repeat("0", 32), "PARLEY_TWILIO_AUTH_TOKEN": "x", "PARLEY_TWILIO_FROM": "+14155550100"}, all,
			[]string{"PARLEY_PUBLIC_URL is required when PARLEY_TWILIO_ACCOUNT_SID is set"}},
		{"twilio without a sender", map[string]string{"PARLEY_TWILIO_ACCOUNT_SID": "AC" + strings.Repeat("0", 32), "PARLEY_TWILIO_AUTH_TOKEN": "x", "PARLEY_PUBLIC_URL": "https://p.example.org"}, all,
			[]string{"PARLEY_TWILIO_FROM or PARLEY_TWILIO_MESSAGING_SERVICE_SID is required when PARLEY_TWILIO_ACCOUNT_SID is set"}},
		{"twilio with a messaging service", map[string]string{"PARLEY_TWILIO_ACCOUNT_SID": "AC" + strings.Repeat("0", 32), "PARLEY_TWILIO_AUTH_TOKEN": "x", "PARLEY_PUBLIC_URL": "https://p.example.org",
			"PARLEY_TWILIO_MESSAGING_SERVICE_SID": "MG" + strings.Repeat("0", 32)}, all, nil},
		{"metrics token short", map[string]string{"PARLEY_METRICS_TOKEN": "secret"}, all, []string{"PARLEY_METRICS_TOKEN must be at least 32 characters"}},
		{"metrics address", map[string]string{"PARLEY_METRICS_ADDR": "9090"}, all, []string{"PARLEY_METRICS_ADDR is not a listen address"}},
		{"metrics on the service's address", map[string]string{"PARLEY_METRICS_ADDR": ":8080"}, all, []string{"PARLEY_METRICS_ADDR is the same as PARLEY_ADDR"}},
		{"profiler on a public address", map[string]string{"PARLEY_PPROF_ADDR": ":6060"}, all, []string{"PARLEY_PPROF_ADDR is not a loopback address"}},
		{"profiler not an address", map[string]string{"PARLEY_PPROF_ADDR": "6060"}, all, []string{"PARLEY_PPROF_ADDR is not a listen address"}},
		{"profiler on loopback", map[string]string{"PARLEY_PPROF_ADDR": "127.0.0.1:6060"}, all, nil},
		{"provider base URL", map[string]string{"PARLEY_TWILIO_API_BASE_URL": "localhost:9999"}, all, []string{"PARLEY_TWILIO_API_BASE_URL is not an absolute http(s) URL"}},
		{"media hosts", map[string]string{"PARLEY_TWILIO_MEDIA_HOSTS": "api.twilio.com,https://evil.example/x"}, all, []string{"PARLEY_TWILIO_MEDIA_HOSTS holds something that is not a host name"}},
		{"flows dir", map[string]string{"PARLEY_FLOWS_DIR": "/does/not/exist"}, all, []string{"PARLEY_FLOWS_DIR is not a readable directory"}},
		{"llm without a model", map[string]string{"PARLEY_LLM_BASE_URL": "http://litellm:4000"}, all, []string{"PARLEY_LLM_MODEL is required when PARLEY_LLM_BASE_URL is set"}},
		{"log level", map[string]string{"PARLEY_LOG_LEVEL": "loud"}, all, []string{"PARLEY_LOG_LEVEL"}},
		{"proxy hops", map[string]string{"PARLEY_TRUSTED_PROXY_HOPS": "-1"}, all, []string{"PARLEY_TRUSTED_PROXY_HOPS is not a number of proxies"}},
		{"proxy hops as addresses", map[string]string{"PARLEY_TRUSTED_PROXY_HOPS": "10.0.0.0/8"}, all, []string{"PARLEY_TRUSTED_PROXY_HOPS is not a number of proxies"}},
		{"provider send rate", map[string]string{"PARLEY_META_SEND_RATE": "80/s"}, all, []string{"PARLEY_META_SEND_RATE is not a send rate (messages a second, above 0 and at most 10000); set it to the rate the platform allows, like PARLEY_META_SEND_RATE=80"}},
		{"provider send rate past any platform's", map[string]string{"PARLEY_TWILIO_SEND_RATE": "1e6"}, all, []string{"PARLEY_TWILIO_SEND_RATE is not a send rate"}},
		{"provider send rate zero", map[string]string{"PARLEY_SIREN_SEND_RATE": "0"}, all, []string{"PARLEY_SIREN_SEND_RATE is not a send rate"}},
		{"in-flight cap", map[string]string{"PARLEY_SEND_MAX_IN_FLIGHT": "0"}, all, []string{"PARLEY_SEND_MAX_IN_FLIGHT must be a whole number from 1 to 5000"}},
		{"in-flight cap fraction", map[string]string{"PARLEY_SEND_MAX_IN_FLIGHT": "2.5"}, all, []string{"PARLEY_SEND_MAX_IN_FLIGHT must be a whole number"}},
		{"several at once", map[string]string{"DATABASE_URL": "", "PARLEY_ADDR": "nope"}, all, []string{"DATABASE_URL is not set", "PARLEY_ADDR is not a listen address"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env := validEnv()
			for k, v := range tt.set {
				env[k] = v
			}
			_, err := load(env, tt.req)
			if len(tt.want) == 0 {
				if err != nil {
					t.Fatalf("Load: unexpected error %v", err)
				}
				return
			}
			var cerr *config.Error
			if !errors.As(err, &cerr) {
				t.Fatalf("Load error = %v, want *config.Error", err)
			}
			if len(cerr.Problems) != len(tt.want) {
				t.Errorf("got %d problems, want %d: %v", len(cerr.Problems), len(tt.want), err)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q lacks %q", err.Error(), w)
				}
			}
			for _, secret := range []string{b64(1, 32), b64(2, 32), "pw@db"} {
				if strings.Contains(err.Error(), secret) {
					t.Errorf("error repeats a secret: %q", err.Error())
				}
			}
		})
	}
}

// Each provider's send rate is its own when set, PARLEY_SEND_RATE's
// otherwise (0 here: the pipeline falls back); the in-flight cap defaults
// to 200.
func TestLoad_PerProviderSendRates(t *testing.T) {
	env := validEnv()
	env["PARLEY_SEND_RATE"], env["PARLEY_META_SEND_RATE"], env["PARLEY_TWILIO_SEND_RATE"] = "25", "80", "1.5"
	c, err := load(env, all)
	if err != nil {
		t.Fatal(err)
	}
	if c.SendRate != 25 || c.MetaSendRate != 80 || c.TwilioSendRate != 1.5 || c.SirenSendRate != 0 || c.SendMaxInFlight != 200 {
		t.Fatalf("rates %g, twilio %g, meta %g, siren %g, in flight %d", c.SendRate, c.TwilioSendRate, c.MetaSendRate, c.SirenSendRate, c.SendMaxInFlight)
	}
	env["PARLEY_SEND_MAX_IN_FLIGHT"] = "500"
	if c, err = load(env, all); err != nil || c.SendMaxInFlight != 500 {
		t.Fatalf("in flight %v, %v", c, err)
	}
}

// The pool serves every worker at once, and then some: a pool smaller than
// the workers made them queue for connections.
func TestLoad_PoolIsSizedFromTheWorkers(t *testing.T) {
	env := validEnv()
	env["PARLEY_WORKERS"], env["PARLEY_SEND_WORKERS"], env["PARLEY_AI_WORKERS"] = "30", "4", "5"
	c, err := load(env, all)
	if err != nil {
		t.Fatal(err)
	}
	if c.DBMaxConns != 49 {
		t.Errorf("DBMaxConns = %d, want 30 + 4 + 5 + 10", c.DBMaxConns)
	}
	env["PARLEY_DB_MAX_CONNS"] = "12"
	if c, _ := load(env, all); c == nil || c.DBMaxConns != 12 {
		t.Errorf("PARLEY_DB_MAX_CONNS=12 not honoured: %+v", c)
	}
}

// Send workers follow the in-flight cap unless set (ten workers held a
// 150 ms provider to 320 calls whatever the cap), and past ten they share
// the pool's connections: they hold one only around their batch's calls.
func TestLoad_SendWorkersFollowTheInFlightCap(t *testing.T) {
	env := validEnv()
	for _, tc := range []struct {
		inFlight, sendWorkers  string
		wantWorkers, wantConns int
	}{
		{"", "", 13, 20 + 10 + 10 + 10},     // 200 in flight: 13 workers
		{"1000", "", 63, 20 + 10 + 10 + 10}, // 1,000: 63 workers, the pool as with ten
		{"40", "", 10, 20 + 10 + 10 + 10},   // never fewer than ten
		{"1000", "4", 4, 20 + 4 + 10 + 10},  // set: as set
	} {
		env["PARLEY_SEND_MAX_IN_FLIGHT"], env["PARLEY_SEND_WORKERS"] = tc.inFlight, tc.sendWorkers
		c, err := load(env, all)
		if err != nil {
			t.Fatal(err)
		}
		if c.SendWorkers != tc.wantWorkers || c.DBMaxConns != tc.wantConns {
			t.Errorf("in flight %q, send workers %q: %d workers, %d connections; want %d, %d",
				tc.inFlight, tc.sendWorkers, c.SendWorkers, c.DBMaxConns, tc.wantWorkers, tc.wantConns)
		}
	}
}

// `parley serve` does not fall back to local sign-in: PARLEY_AUTH_MODE is
// required, unless SUPABASE_URL is set, which chooses Supabase and says so.
// Other commands keep the local default.
func TestLoad_ServeChoosesTheAuthModeOnlyFromSettings(t *testing.T) {
	serve := config.Requirements{Database: true, Keys: true, AuthMode: true}
	if _, err := load(validEnv(), serve); err == nil || !strings.Contains(err.Error(), "PARLEY_AUTH_MODE is not set") {
		t.Fatalf("serve without PARLEY_AUTH_MODE: %v", err)
	}
	env := validEnv()
	env["SUPABASE_URL"], env["SUPABASE_ANON_KEY"] = "https://ref.supabase.co", "anon"
	c, err := load(env, serve)
	if err != nil || c.AuthMode != "supabase" || !strings.Contains(c.AuthModeChosen, "SUPABASE_URL is set") {
		t.Fatalf("with SUPABASE_URL: %+v, %v", c, err)
	}
	env = validEnv()
	env["PARLEY_AUTH_MODE"] = "local"
	if c, err := load(env, serve); err != nil || c.AuthMode != "local" || c.AuthModeChosen != "" {
		t.Fatalf("PARLEY_AUTH_MODE=local, set knowingly: %v", err)
	}
	if c, err := load(validEnv(), all); err != nil || c.AuthMode != "local" {
		t.Fatalf("another command without PARLEY_AUTH_MODE: %v", err)
	}
}

// PARLEY_TIME_ZONE is the clinic's time zone: UTC unset, an IANA name
// otherwise, and anything else stops start-up naming it.
func TestLoad_TimeZone(t *testing.T) {
	env := validEnv()
	if c, err := load(env, all); err != nil || c.TimeZone.String() != "UTC" {
		t.Fatalf("unset: %v, %v", c, err)
	}
	env["PARLEY_TIME_ZONE"] = "Asia/Kolkata"
	if c, err := load(env, all); err != nil || c.TimeZone.String() != "Asia/Kolkata" {
		t.Fatalf("Asia/Kolkata: %v", err)
	}
	env["PARLEY_TIME_ZONE"] = "Mars/Olympus"
	if _, err := load(env, all); err == nil || !strings.Contains(err.Error(), "PARLEY_TIME_ZONE") {
		t.Fatalf("an unknown zone: %v", err)
	}
}
