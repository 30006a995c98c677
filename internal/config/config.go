// Package config reads every Parley setting from the environment and
// validates it at start, so a bad deployment stops with a message that names
// the setting and says how to fix it.
package config

import (
	"encoding/base64"
	"fmt"
	"math"
	"net"
	"net/url"
	"os"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
)

// Config is every setting Parley reads. Secrets live here only in memory;
// String never prints them.
type Config struct {
	DatabaseURL   string
	Addr          string
	DefaultRegion string
	// TimeZone is the clinic's time zone (PARLEY_TIME_ZONE, an IANA name;
	// UTC unless set): where scheduled times like appointment_at are read
	// when a flow names no timezone of its own, and times staff write
	// without an offset (a broadcast's time to send).
	TimeZone  *time.Location
	PublicURL string
	LogLevel  string

	EncryptionKeys []Key
	BlindIndexKey  []byte
	SessionKeys    []SessionKeyPair

	AuthMode               string
	AuthModeChosen         string // why AuthMode, when PARLEY_AUTH_MODE was unset ("" when set); serve logs it
	SupabaseURL            string
	SupabaseAnonKey        string
	SupabaseServiceRoleKey string
	SupabaseJWTSecret      string

	TwilioAccountSID          string
	TwilioAuthToken           string
	TwilioFrom                string
	TwilioMessagingServiceSID string
	TwilioAPIBaseURL          string
	TwilioMediaHosts          []string // hosts whose media URLs get the credentials (adapter default when empty)

	MetaAppSecret     string
	MetaVerifyToken   string
	MetaAccessToken   string
	MetaPhoneNumberID string
	MetaAPIBaseURL    string
	MetaMediaHosts    []string
	// MetaWABAID is the WhatsApp Business Account whose templates are
	// synced into the registry ("" syncs none from Meta).
	MetaWABAID string

	SirenAPIKey        string
	SirenWebhookSecret string
	SirenAPIBaseURL    string
	SirenMediaHosts    []string

	SarvamAPIKey   string
	SarvamBaseURL  string
	GeminiAPIKey   string
	GeminiBaseURL  string
	SarvamModel    string
	SarvamLanguage string
	GeminiModel    string
	// UnderstandHold is the longest a voice note holds up its contact's
	// later messages while it is transcribed.
	UnderstandHold time.Duration
	LLMBaseURL     string
	LLMAPIKey      string
	LLMModel       string

	FlowsDir string

	AutoReply string  // the acknowledgement sent until flows answer; "" sends none
	SendRate  float64 // outbound messages per second per provider and instance
	// TwilioSendRate, MetaSendRate and SirenSendRate are each provider's
	// own send rate (messages a second, every instance together); 0 takes
	// SendRate.
	TwilioSendRate, MetaSendRate, SirenSendRate float64
	// SendMaxInFlight caps a provider's send calls in flight per instance.
	SendMaxInFlight int
	MediaMaxBytes   int64 // largest inbound attachment fetched
	Workers         int   // queue jobs run at once per instance
	// ProcessAhead is how far processing may run ahead of sending before
	// it slows to a couple of jobs at a time.
	ProcessAhead time.Duration
	SendWorkers  int // send jobs run at once per instance, on their own queue
	AIWorkers    int // AI requests at once per instance
	// JobTimeout bounds one queue job (a fetch or an AI call gets twice
	// it); RescueAfter is when a job left running by a dead instance is
	// taken up again.
	JobTimeout, RescueAfter time.Duration
	// EventsURL, when set, receives signed events (message received, sent,
	// failed; conversation handed off, ended), signed with EventsSecret;
	// EventsPersonal adds the contact's number and the message's words.
	EventsURL      string
	EventsSecret   string
	EventsPersonal bool
	// RetentionDays, when above 0, clears message bodies and attachments
	// older than this many days, daily (off by default).
	RetentionDays int
	// ShutdownGrace is how long a stopping instance (SIGTERM) takes to
	// finish what is in flight and release its jobs before it exits.
	ShutdownGrace time.Duration
	DBMaxConns    int // database pool size per instance

	// TrustedProxyHops is how many proxies the server sits behind (1 on
	// Cloud Run): the client's address is that many entries from the right
	// of X-Forwarded-For. 0 (the default) reads no header.
	TrustedProxyHops int

	SessionIdle     time.Duration // a console session unused this long ends
	SessionAbsolute time.Duration // a console session this old ends

	// MetricsToken, when set, is the Bearer token /metrics asks for;
	// MetricsAddr, when set, is a listener of its own that serves only
	// /metrics. With neither, `parley serve` serves no metrics (they
	// would be public on the service's address).
	MetricsToken string
	MetricsAddr  string

	// PprofAddr, when set, is a loopback listener serving Go's profiler
	// (net/http/pprof) for measuring a running server; off by default and
	// never on the service's public address.
	PprofAddr string
}

// Key is one entry of the encryption key ring.
type Key struct {
	ID     string
	Secret []byte // 32 bytes
}

// SessionKeyPair is one gorilla/securecookie key pair.
type SessionKeyPair struct {
	HashKey  []byte
	BlockKey []byte
}

// Requirements says which settings a command cannot do without.
type Requirements struct {
	Database bool // DATABASE_URL
	Keys     bool // PARLEY_ENCRYPTION_KEYS, PARLEY_BLIND_INDEX_KEY, PARLEY_SESSION_KEYS
	// AuthMode: PARLEY_AUTH_MODE must be set, or SUPABASE_URL (which picks
	// supabase), rather than falling back to local sign-in, which is for
	// development only (`parley serve`).
	AuthMode bool
}

// Error lists every problem found in the environment, one per line.
type Error struct {
	Problems []Problem
}

// Problem is one invalid or missing setting.
type Problem struct {
	Var    string // the environment variable
	Reason string // what is wrong, never the value itself
	Fix    string // how to fix it
}

func (p Problem) String() string {
	return fmt.Sprintf("config: %s %s; %s", p.Var, p.Reason, p.Fix)
}

func (e *Error) Error() string {
	lines := make([]string, len(e.Problems))
	for i, p := range e.Problems {
		lines[i] = p.String()
	}
	return strings.Join(lines, "\n")
}

// Load reads and validates the settings through getenv (os.Getenv in
// production). It returns an *Error listing every problem found.
func Load(getenv func(string) string, req Requirements) (*Config, error) {
	l := loader{getenv: getenv}
	c := &Config{
		DatabaseURL:   l.str("DATABASE_URL"),
		Addr:          l.strDefault("PARLEY_ADDR", ":8080"),
		DefaultRegion: strings.ToUpper(l.str("PARLEY_DEFAULT_REGION")),
		PublicURL:     strings.TrimRight(l.str("PARLEY_PUBLIC_URL"), "/"),
		LogLevel:      strings.ToLower(l.strDefault("PARLEY_LOG_LEVEL", "info")),
		AuthMode:      strings.ToLower(l.str("PARLEY_AUTH_MODE")),

		SupabaseURL:            strings.TrimRight(l.str("SUPABASE_URL"), "/"),
		SupabaseAnonKey:        l.str("SUPABASE_ANON_KEY"),
		SupabaseServiceRoleKey: l.str("SUPABASE_SERVICE_ROLE_KEY"),
		SupabaseJWTSecret:      l.str("SUPABASE_JWT_SECRET"),

		TwilioAccountSID:          l.str("PARLEY_TWILIO_ACCOUNT_SID"),
		TwilioAuthToken:           l.str("PARLEY_TWILIO_AUTH_TOKEN"),
		TwilioFrom:                l.str("PARLEY_TWILIO_FROM"),
		TwilioMessagingServiceSID: l.str("PARLEY_TWILIO_MESSAGING_SERVICE_SID"),
		TwilioAPIBaseURL:          l.str("PARLEY_TWILIO_API_BASE_URL"),
		TwilioMediaHosts:          l.hosts("PARLEY_TWILIO_MEDIA_HOSTS"),

		MetaAppSecret:     l.str("PARLEY_META_APP_SECRET"),
		MetaVerifyToken:   l.str("PARLEY_META_VERIFY_TOKEN"),
		MetaAccessToken:   l.str("PARLEY_META_ACCESS_TOKEN"),
		MetaPhoneNumberID: l.str("PARLEY_META_PHONE_NUMBER_ID"),
		MetaAPIBaseURL:    l.strDefault("PARLEY_META_API_BASE_URL", "https://graph.facebook.com/v21.0"),
		MetaMediaHosts:    l.hosts("PARLEY_META_MEDIA_HOSTS"),
		MetaWABAID:        l.str("PARLEY_META_WABA_ID"),

		SirenAPIKey:        l.str("PARLEY_SIREN_API_KEY"),
		SirenWebhookSecret: l.str("PARLEY_SIREN_WEBHOOK_SECRET"),
		SirenAPIBaseURL:    l.str("PARLEY_SIREN_API_BASE_URL"),
		SirenMediaHosts:    l.hosts("PARLEY_SIREN_MEDIA_HOSTS"),

		SarvamAPIKey:  l.str("PARLEY_SARVAM_API_KEY"),
		SarvamBaseURL: l.strDefault("PARLEY_SARVAM_BASE_URL", "https://api.sarvam.ai"),
		GeminiAPIKey:  l.str("PARLEY_GEMINI_API_KEY"),
		GeminiBaseURL: l.str("PARLEY_GEMINI_BASE_URL"),
		LLMBaseURL:    l.str("PARLEY_LLM_BASE_URL"),
		LLMAPIKey:     l.str("PARLEY_LLM_API_KEY"),
		LLMModel:      l.str("PARLEY_LLM_MODEL"),

		FlowsDir: l.str("PARLEY_FLOWS_DIR"),

		AutoReply:     l.str("PARLEY_AUTO_REPLY"),
		SendRate:      l.float("PARLEY_SEND_RATE", 10),
		MediaMaxBytes: int64(l.float("PARLEY_MEDIA_MAX_BYTES", 16<<20)),
		Workers:       int(l.float("PARLEY_WORKERS", 20)),
		AIWorkers:     int(l.float("PARLEY_AI_WORKERS", 10)),
	}
	c.TwilioSendRate = l.providerRate("PARLEY_TWILIO_SEND_RATE", c.SendRate)
	c.MetaSendRate = l.providerRate("PARLEY_META_SEND_RATE", c.SendRate)
	c.SirenSendRate = l.providerRate("PARLEY_SIREN_SEND_RATE", c.SendRate)
	c.SendMaxInFlight = l.whole("PARLEY_SEND_MAX_IN_FLIGHT", 200, 1, 5000,
		"calls to one provider in flight per instance, sized by the send rate and latency below it")
	// A send job calls the platform for its batch's messages at once and
	// records them when the last has answered, so the calls in flight are
	// at most the send workers times their batches' fill: enough workers
	// that batches a quarter full (16 messages) reach the in-flight cap,
	// which then bounds the calls (at 150 ms, ten workers held 1,000/s to
	// 320 calls and 800 messages a second).
	c.SendWorkers = int(l.float("PARLEY_SEND_WORKERS", float64(max(10, (c.SendMaxInFlight+15)/16))))
	c.ProcessAhead = l.duration("PARLEY_PROCESS_AHEAD", 300*time.Millisecond)
	c.RetentionDays = int(l.float("PARLEY_RETENTION_DAYS", 0))
	c.SarvamModel, c.SarvamLanguage = l.strDefault("PARLEY_SARVAM_MODEL", "saaras:v3"), l.strDefault("PARLEY_SARVAM_LANGUAGE", "unknown")
	c.GeminiModel = l.strDefault("PARLEY_GEMINI_MODEL", "gemini-2.5-flash")
	c.UnderstandHold = l.duration("PARLEY_UNDERSTAND_HOLD", 2*time.Minute)
	c.EventsURL, c.EventsSecret = l.str("PARLEY_EVENTS_URL"), l.str("PARLEY_EVENTS_SECRET")
	c.EventsPersonal = l.str("PARLEY_EVENTS_PERSONAL") == "true"
	if c.EventsURL != "" && len(c.EventsSecret) < 32 {
		l.fail("PARLEY_EVENTS_SECRET", "must be at least 32 characters when PARLEY_EVENTS_URL is set (it signs every event)",
			"generate one: openssl rand -hex 32")
	}
	c.ShutdownGrace = l.duration("PARLEY_SHUTDOWN_GRACE", 8*time.Second)
	c.JobTimeout = l.duration("PARLEY_JOB_TIMEOUT", 15*time.Second)
	c.RescueAfter = l.duration("PARLEY_JOB_RESCUE_AFTER", 40*time.Second)
	if c.RescueAfter <= 2*c.JobTimeout {
		l.fail("PARLEY_JOB_RESCUE_AFTER", "must be longer than twice PARLEY_JOB_TIMEOUT (the longest a fetch or an AI call may run)",
			"raise it, or lower PARLEY_JOB_TIMEOUT")
	}
	c.MetricsToken, c.MetricsAddr = l.str("PARLEY_METRICS_TOKEN"), l.str("PARLEY_METRICS_ADDR")
	l.metrics(c)
	c.PprofAddr = l.str("PARLEY_PPROF_ADDR")
	l.pprof(c)
	c.TrustedProxyHops = l.hops("PARLEY_TRUSTED_PROXY_HOPS")
	c.SessionIdle = l.duration("PARLEY_SESSION_IDLE", 30*time.Minute)
	c.SessionAbsolute = l.duration("PARLEY_SESSION_MAX_AGE", 12*time.Hour)
	// Every worker may hold a connection at once, and so may the two
	// ingest committers; the rest serve HTTP requests and the queue's own
	// upkeep. Send workers hold one only to lock and to record their
	// batch, never while the platform answers: past ten they share.
	c.DBMaxConns = int(l.float("PARLEY_DB_MAX_CONNS", float64(c.Workers+min(c.SendWorkers, 10)+c.AIWorkers+10)))

	l.databaseURL(c.DatabaseURL, req.Database)
	l.addr(c.Addr)
	c.TimeZone = l.timeZone("PARLEY_TIME_ZONE")
	if c.DefaultRegion != "" && !regionRE.MatchString(c.DefaultRegion) {
		l.fail("PARLEY_DEFAULT_REGION", "is not a two-letter region code", "set it like PARLEY_DEFAULT_REGION=IN")
	}
	switch c.LogLevel {
	case "debug", "info", "warn", "error":
	default:
		l.fail("PARLEY_LOG_LEVEL", "must be debug, info, warn or error", "set it to one of those or unset it")
	}
	for _, u := range []struct{ name, value string }{
		{"PARLEY_PUBLIC_URL", c.PublicURL},
		{"SUPABASE_URL", c.SupabaseURL},
		{"PARLEY_TWILIO_API_BASE_URL", c.TwilioAPIBaseURL},
		{"PARLEY_META_API_BASE_URL", c.MetaAPIBaseURL},
		{"PARLEY_SIREN_API_BASE_URL", c.SirenAPIBaseURL},
		{"PARLEY_EVENTS_URL", c.EventsURL},
		{"PARLEY_SARVAM_BASE_URL", c.SarvamBaseURL},
		{"PARLEY_GEMINI_BASE_URL", c.GeminiBaseURL},
		{"PARLEY_LLM_BASE_URL", c.LLMBaseURL},
	} {
		l.httpURL(u.name, u.value)
	}

	if c.LLMBaseURL != "" && c.LLMModel == "" {
		l.fail("PARLEY_LLM_MODEL", "is required when PARLEY_LLM_BASE_URL is set", "set it to the model name your endpoint serves, e.g. gpt-4o-mini")
	}

	c.EncryptionKeys = l.encryptionKeys(req.Keys)
	c.BlindIndexKey = l.key32("PARLEY_BLIND_INDEX_KEY", req.Keys, "generate one with `parley keys generate blind-index`")
	c.SessionKeys = l.sessionKeys(req.Keys)

	c.AuthMode, c.AuthModeChosen = l.authMode(c.AuthMode, c.SupabaseURL, req.AuthMode)
	switch c.AuthMode {
	case "", "local":
	case "supabase":
		if c.SupabaseURL == "" {
			l.fail("SUPABASE_URL", "is required when PARLEY_AUTH_MODE=supabase", "set it to your project URL, https://<ref>.supabase.co")
		}
		if c.SupabaseAnonKey == "" {
			l.fail("SUPABASE_ANON_KEY", "is required when PARLEY_AUTH_MODE=supabase", "copy the anon (publishable) key from the Supabase dashboard")
		}
	default:
		l.fail("PARLEY_AUTH_MODE", "must be supabase or local", "set PARLEY_AUTH_MODE=supabase in production")
	}

	if c.MetaWABAID != "" && !digitsRE.MatchString(c.MetaWABAID) {
		l.fail("PARLEY_META_WABA_ID", "is not a WhatsApp Business Account id (digits)", "copy it from Meta's WhatsApp Manager (Account tools › Phone numbers shows the account id)")
	}
	if c.TwilioAccountSID != "" && !twilioSIDRE.MatchString(c.TwilioAccountSID) {
		l.fail("PARLEY_TWILIO_ACCOUNT_SID", "is not an account SID (AC followed by 32 hex digits)", "copy it from the Twilio console")
	}
	switch {
	case c.TwilioAccountSID != "" && c.TwilioAuthToken == "":
		l.fail("PARLEY_TWILIO_AUTH_TOKEN", "is required when PARLEY_TWILIO_ACCOUNT_SID is set", "copy the auth token from the Twilio console")
	case c.TwilioAuthToken != "" && !alphanumericRE.MatchString(c.TwilioAuthToken):
		// twilio-go refuses such a token at every send (error 21224),
		// after the webhooks were acknowledged: refuse it at the start.
		l.fail("PARLEY_TWILIO_AUTH_TOKEN", "holds characters other than letters and digits, so no send could be made with it",
			"copy the auth token (32 letters and digits) from the Twilio console")
	}
	if c.TwilioAccountSID != "" && c.TwilioFrom == "" && c.TwilioMessagingServiceSID == "" {
		// Without a sender every send would fail later, after the
		// webhooks were acknowledged: refuse it at the start.
		l.fail("PARLEY_TWILIO_FROM", "or PARLEY_TWILIO_MESSAGING_SERVICE_SID is required when PARLEY_TWILIO_ACCOUNT_SID is set (replies need a sender)",
			"set PARLEY_TWILIO_FROM to your Twilio number (+14155550100, or whatsapp:+14155550100) or PARLEY_TWILIO_MESSAGING_SERVICE_SID to an MG… SID")
	}
	if c.TwilioAccountSID != "" && c.PublicURL == "" {
		// Twilio signs over the URL it called: without it every webhook
		// would be refused, and no status callback could be registered.
		l.fail("PARLEY_PUBLIC_URL", "is required when PARLEY_TWILIO_ACCOUNT_SID is set (Twilio signs every webhook over the public URL it calls)",
			"set it to the external base URL Twilio reaches, like https://parley.example.org, or unset PARLEY_TWILIO_ACCOUNT_SID")
	}
	if c.FlowsDir != "" {
		if fi, err := os.Stat(c.FlowsDir); err != nil || !fi.IsDir() {
			l.fail("PARLEY_FLOWS_DIR", "is not a readable directory", "point it at the folder holding the flow files, or unset it for the sample flow")
		}
	}

	if len(l.problems) > 0 {
		return nil, &Error{Problems: l.problems}
	}
	return c, nil
}

var (
	regionRE       = regexp.MustCompile(`^[A-Z]{2}$`)
	keyIDRE        = regexp.MustCompile(`^[A-Za-z0-9_-]{1,32}$`)
	twilioSIDRE    = regexp.MustCompile(`^AC[0-9a-fA-F]{32}$`)
	alphanumericRE = regexp.MustCompile(`^[a-zA-Z0-9]+$`)
	digitsRE       = regexp.MustCompile(`^[0-9]{1,32}$`)
)

type loader struct {
	getenv   func(string) string
	problems []Problem
}

func (l *loader) fail(name, reason, fix string) {
	l.problems = append(l.problems, Problem{Var: name, Reason: reason, Fix: fix})
}

func (l *loader) str(name string) string { return strings.TrimSpace(l.getenv(name)) }

func (l *loader) strDefault(name, def string) string {
	if v := l.str(name); v != "" {
		return v
	}
	return def
}

// hosts reads a comma-separated list of host names ("api.example.com",
// "host:port", or ".example.com" for any host under it).
func (l *loader) hosts(name string) []string {
	var out []string
	for _, h := range strings.Split(l.str(name), ",") {
		h = strings.ToLower(strings.TrimSpace(h))
		if h == "" {
			continue
		}
		if strings.ContainsAny(h, "/@ ") || strings.Contains(h, "://") {
			l.fail(name, "holds something that is not a host name", "list host names only, comma-separated, like api.twilio.com,.example.com")
			return nil
		}
		out = append(out, h)
	}
	return out
}

// hops reads a count of trusted proxies, 0 to 5 (0 when unset).
func (l *loader) hops(name string) int {
	v := l.str(name)
	if v == "" {
		return 0
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 0 || n > 5 {
		l.fail(name, "is not a number of proxies from 0 to 5",
			"set it to how many proxies append to X-Forwarded-For before Parley: 1 on Cloud Run, 2 behind a Google load balancer in front of Cloud Run, 0 with none")
		return 0
	}
	return n
}

// duration reads a positive duration like 30m, def when unset.
func (l *loader) duration(name string, def time.Duration) time.Duration {
	v := l.str(name)
	if v == "" {
		return def
	}
	d, err := time.ParseDuration(v)
	if err != nil || d <= 0 {
		l.fail(name, "is not a positive duration", fmt.Sprintf("set it like %s=%s, or unset it for the default", name, def))
		return def
	}
	return d
}

// float reads a positive number, def when unset.
func (l *loader) float(name string, def float64) float64 {
	v := l.str(name)
	if v == "" {
		return def
	}
	f, err := strconv.ParseFloat(v, 64)
	if err != nil || f <= 0 {
		l.fail(name, "is not a positive number", fmt.Sprintf("set it like %s=%g, or unset it for the default", name, def))
		return def
	}
	return f
}

// maxSendRate bounds a send rate: well above what any platform grants
// (WhatsApp's upper tier is 1,000 a second per number), so a rate past it
// is a typing slip.
const maxSendRate = 10000

// providerRate reads a provider's own send rate (messages a second): a
// positive number no larger than maxSendRate, or unset for fallback (the
// PARLEY_SEND_RATE), returned as 0.
func (l *loader) providerRate(name string, fallback float64) float64 {
	v := l.str(name)
	if v == "" {
		return 0
	}
	f, err := strconv.ParseFloat(v, 64)
	if err != nil || f <= 0 || f > maxSendRate || math.IsNaN(f) {
		l.fail(name, fmt.Sprintf("is not a send rate (messages a second, above 0 and at most %d)", maxSendRate),
			fmt.Sprintf("set it to the rate the platform allows, like %s=80, or unset it to use PARLEY_SEND_RATE (%g)", name, fallback))
		return 0
	}
	return f
}

// whole reads a whole number from least to most (def when unset); what
// says what it counts.
func (l *loader) whole(name string, def, least, most int, what string) int {
	v := l.str(name)
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < least || n > most {
		l.fail(name, fmt.Sprintf("must be a whole number from %d to %d (%s)", least, most, what),
			fmt.Sprintf("set it like %s=%d, or unset it for the default", name, def))
		return def
	}
	return n
}

// authMode settles the sign-in mode when PARLEY_AUTH_MODE is unset: supabase
// when SUPABASE_URL is set; otherwise local, unless the command must not
// fall back to it (a problem then). It returns the mode and why it was
// chosen.
func (l *loader) authMode(mode, supabaseURL string, required bool) (string, string) {
	switch {
	case mode != "":
		return mode, ""
	case supabaseURL != "":
		return "supabase", "PARLEY_AUTH_MODE is unset and SUPABASE_URL is set"
	case required:
		l.fail("PARLEY_AUTH_MODE", "is not set (local sign-in is a development mode, and parley serve does not fall back to it)",
			"set PARLEY_AUTH_MODE=supabase with SUPABASE_URL and SUPABASE_ANON_KEY, or PARLEY_AUTH_MODE=local to accept local sign-in knowingly")
		return "", ""
	}
	return "local", "PARLEY_AUTH_MODE is unset"
}

func (l *loader) databaseURL(v string, required bool) {
	if v == "" {
		if required {
			l.fail("DATABASE_URL", "is not set", "set it to a Postgres URL like postgres://user:pass@host:5432/parley, or run `parley dev` for an embedded database")
		}
		return
	}
	if _, err := pgx.ParseConfig(v); err != nil {
		l.fail("DATABASE_URL", "is not a valid Postgres connection string", "use the form postgres://user:pass@host:5432/dbname?sslmode=require")
	}
}

func (l *loader) addr(v string) {
	if _, port, err := net.SplitHostPort(v); err != nil || port == "" {
		l.fail("PARLEY_ADDR", "is not a listen address", "use host:port or :port, like :8080")
	}
}

// metrics checks the guard of /metrics: a token long enough not to be
// guessed, and a listener of its own apart from the service's.
func (l *loader) metrics(c *Config) {
	if c.MetricsToken != "" && len(c.MetricsToken) < 32 {
		l.fail("PARLEY_METRICS_TOKEN", "must be at least 32 characters (it guards /metrics)", "generate one: openssl rand -hex 32")
	}
	if c.MetricsAddr == "" {
		return
	}
	if _, port, err := net.SplitHostPort(c.MetricsAddr); err != nil || port == "" {
		l.fail("PARLEY_METRICS_ADDR", "is not a listen address", "use host:port or :port, like 127.0.0.1:9090")
	} else if c.MetricsAddr == c.Addr {
		l.fail("PARLEY_METRICS_ADDR", "is the same as PARLEY_ADDR", "give metrics a port of their own, like :9090, or unset it and set PARLEY_METRICS_TOKEN")
	}
}

// pprof checks the profiler's listener: loopback only, since profiles
// and goroutine dumps show the process's memory and are not guarded.
func (l *loader) pprof(c *Config) {
	if c.PprofAddr == "" {
		return
	}
	host, port, err := net.SplitHostPort(c.PprofAddr)
	if err != nil || port == "" {
		l.fail("PARLEY_PPROF_ADDR", "is not a listen address", "use a loopback host:port, like 127.0.0.1:6060")
		return
	}
	if ip := net.ParseIP(host); host != "localhost" && (ip == nil || !ip.IsLoopback()) {
		l.fail("PARLEY_PPROF_ADDR", "is not a loopback address (the profiler is unguarded)", "use 127.0.0.1:PORT or [::1]:PORT and reach it through an SSH tunnel")
	}
}

func (l *loader) httpURL(name, v string) {
	if v == "" {
		return
	}
	u, err := url.Parse(v)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		l.fail(name, "is not an absolute http(s) URL", "use the form https://host[/path]")
	}
}

// decode32 decodes standard or URL-safe base64 that must hold 32 bytes.
func decode32(s string) ([]byte, bool) {
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.URLEncoding, base64.RawStdEncoding, base64.RawURLEncoding} {
		if b, err := enc.DecodeString(s); err == nil {
			return b, len(b) == 32
		}
	}
	return nil, false
}

func (l *loader) key32(name string, required bool, fix string) []byte {
	v := l.str(name)
	if v == "" {
		if required {
			l.fail(name, "is not set", fix)
		}
		return nil
	}
	b, ok := decode32(v)
	if !ok {
		l.fail(name, "is not base64 of exactly 32 bytes", fix)
		return nil
	}
	return b
}

func (l *loader) encryptionKeys(required bool) []Key {
	const name, fix = "PARLEY_ENCRYPTION_KEYS", "each entry is id:base64(32 bytes), comma-separated, active first; generate one with `parley keys generate`"
	v := l.str(name)
	if v == "" {
		if required {
			l.fail(name, "is not set", fix)
		}
		return nil
	}
	var keys []Key
	seen := map[string]bool{}
	for i, entry := range strings.Split(v, ",") {
		id, secret, ok := strings.Cut(strings.TrimSpace(entry), ":")
		b, good := decode32(secret)
		switch {
		case !ok || !keyIDRE.MatchString(id):
			l.fail(name, fmt.Sprintf("entry %d has no valid key id (letters, digits, - and _, before a colon)", i+1), fix)
			return nil
		case !good:
			l.fail(name, fmt.Sprintf("entry %d (key id %q) is not base64 of exactly 32 bytes", i+1, id), fix)
			return nil
		case seen[id]:
			l.fail(name, fmt.Sprintf("key id %q appears twice", id), "give every key its own id")
			return nil
		}
		seen[id] = true
		keys = append(keys, Key{ID: id, Secret: b})
	}
	return keys
}

func (l *loader) sessionKeys(required bool) []SessionKeyPair {
	const name, fix = "PARLEY_SESSION_KEYS", "each entry is hashkey:blockkey, both base64 of 32 bytes, comma-separated; generate one with `parley keys generate session`"
	v := l.str(name)
	if v == "" {
		if required {
			l.fail(name, "is not set", fix)
		}
		return nil
	}
	var pairs []SessionKeyPair
	for i, entry := range strings.Split(v, ",") {
		h, b, ok := strings.Cut(strings.TrimSpace(entry), ":")
		hk, okH := decode32(h)
		bk, okB := decode32(b)
		if !ok || !okH || !okB {
			l.fail(name, fmt.Sprintf("entry %d is not two base64 32-byte keys joined by a colon", i+1), fix)
			return nil
		}
		pairs = append(pairs, SessionKeyPair{HashKey: hk, BlockKey: bk})
	}
	return pairs
}

// timeZone reads an IANA time zone name (UTC when unset).
func (l *loader) timeZone(name string) *time.Location {
	v := l.str(name)
	if v == "" {
		return time.UTC
	}
	loc, err := time.LoadLocation(v)
	if err != nil || v == "Local" {
		l.fail(name, "is not a time zone name", "set it like "+name+"=Asia/Kolkata (an IANA name), or unset it for UTC")
		return time.UTC
	}
	return loc
}
