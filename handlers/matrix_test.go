package handlers_test

import (
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/gorilla/securecookie"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/parley-chat/parley/handlers"
	"github.com/parley-chat/parley/internal/auth"
	"github.com/parley-chat/parley/internal/channel"
	"github.com/parley-chat/parley/internal/channel/simulator"
	"github.com/parley-chat/parley/internal/channel/twilio"
	"github.com/parley-chat/parley/internal/desk"
	"github.com/parley-chat/parley/internal/engine"
	"github.com/parley-chat/parley/internal/pgtest"
	"github.com/parley-chat/parley/internal/pipeline"
	"github.com/parley-chat/parley/internal/store"
	"github.com/parley-chat/parley/models"
)

// who is a caller of the matrix: anonymous, or a signed-in role.
type who string

const anonymous who = "anonymous"

var callers = []who{anonymous, who(models.RoleViewer), who(models.RoleAgent), who(models.RoleSupervisor), who(models.RoleAdmin)}

// rule is what one route answers each caller: a status for anonymous and
// one for staff, or per role. Every route the server registers needs one.
type rule struct {
	path        string // the path requested (a route with a parameter gets a real value)
	anon, staff int
	roles       map[models.Role]int // overrides staff per role
}

// rules is the authorisation matrix. A route registered without a rule
// here fails TestAuthorisationMatrix. Who may reply to and take which
// conversation, by its hand-off, is TestAuthorisationMatrix_Handoffs.
var rules = map[string]rule{
	"GET /healthz":                      {anon: 200, staff: 200},
	"GET /readyz":                       {anon: 200, staff: 200},
	"GET /metrics":                      {anon: 401, staff: 401}, // a bearer token, not a staff session (MetricsHandler's own test reads them)
	"GET /static/*":                     {path: "/static/app.css", anon: 200, staff: 200},
	"GET /":                             {anon: 303, staff: 200},
	"GET /status":                       {anon: 303, staff: 200},
	"GET /inbox/results":                {anon: 303, staff: 200},
	"GET /work":                         {anon: 303, staff: 200},
	"GET /work/list":                    {anon: 303, staff: 200},
	"GET /work/pane/:id<int>":           {path: "/work/pane/999999", anon: 303, staff: 404},
	"GET /work/events":                  {anon: 303, staff: 200}, // says only "changed"
	"GET /contacts/:id<int>":            {path: "/contacts/999999", anon: 303, staff: 404},
	"GET /contacts/:id<int>/timeline":   {path: "/contacts/999999/timeline", anon: 303, staff: 404},
	"GET /contacts/:id<int>/events":     {path: "/contacts/999999/events", anon: 303, staff: 200}, // says only "changed"
	"POST /contacts/:id<int>/reveal":    {path: "/contacts/999999/reveal", anon: 401, staff: 404},
	"POST /contacts/:id<int>/reply":     {path: "/contacts/999999/reply", anon: 401, staff: 400, roles: map[models.Role]int{models.RoleViewer: 403}}, // no text sent
	"POST /messages/:id<int>/resend":    {path: "/messages/999999/resend", anon: 401, staff: 404, roles: map[models.Role]int{models.RoleViewer: 403}},
	"GET /handoffs":                     {anon: 303, staff: 200},
	"GET /handoffs/waiting":             {anon: 303, staff: 200, roles: map[models.Role]int{models.RoleViewer: 403}}, // a count, for hand-off work
	"GET /handoffs/waiting/events":      {anon: 303, staff: 200, roles: map[models.Role]int{models.RoleViewer: 403}}, // the same, live
	"GET /flows":                        {anon: 303, staff: 200},
	"GET /flows/:id":                    {path: "/flows/clinic", anon: 303, staff: 200},
	"GET /resend":                       {anon: 303, staff: 200, roles: map[models.Role]int{models.RoleViewer: 403}},
	"POST /resend":                      {anon: 401, staff: 200, roles: map[models.Role]int{models.RoleViewer: 403}}, // no range sent: the form again
	"POST /conversations/:id<int>/take": {path: "/conversations/999999/take", anon: 401, staff: 404, roles: map[models.Role]int{models.RoleViewer: 403}},
	"POST /conversations/:id<int>/override": {path: "/conversations/999999/override", anon: 401, staff: 404,
		roles: map[models.Role]int{models.RoleViewer: 403, models.RoleAgent: 403}}, // the matrix sends no kind: an override, for supervisors
	"GET /admin/staff":  {anon: 303, staff: 403, roles: map[models.Role]int{models.RoleAdmin: 200}},
	"POST /admin/staff": {anon: 401, staff: 403, roles: map[models.Role]int{models.RoleAdmin: 400}}, // no email sent
	"POST /admin/staff/:id": {path: "/admin/staff/00000000-0000-4000-8000-000000000000", anon: 401, staff: 403,
		roles: map[models.Role]int{models.RoleAdmin: 400}}, // nothing to change sent
	"GET /admin/audit":                       {anon: 303, staff: 403, roles: map[models.Role]int{models.RoleSupervisor: 200, models.RoleAdmin: 200}},
	"GET /admin/system":                      {anon: 303, staff: 403, roles: map[models.Role]int{models.RoleAdmin: 200}},
	"GET /dashboard":                         {anon: 303, staff: 403, roles: map[models.Role]int{models.RoleSupervisor: 200, models.RoleAdmin: 200}},
	"GET /dashboard.csv":                     {anon: 303, staff: 403, roles: map[models.Role]int{models.RoleSupervisor: 200, models.RoleAdmin: 200}},
	"GET /api/v1/dashboard":                  {anon: 401, staff: 403, roles: map[models.Role]int{models.RoleSupervisor: 200, models.RoleAdmin: 200}},
	"GET /api/v1/dashboard.csv":              {anon: 401, staff: 403, roles: map[models.Role]int{models.RoleSupervisor: 200, models.RoleAdmin: 200}},
	"GET /media/:id<int>":                    {path: "/media/999999", anon: 303, staff: 404},
	"GET /api/v1/contacts/:id<int>/export":   {path: "/api/v1/contacts/999999/export", anon: 401, staff: 403, roles: map[models.Role]int{models.RoleAdmin: 404}},
	"DELETE /api/v1/contacts/:id<int>":       {path: "/api/v1/contacts/999999", anon: 401, staff: 403, roles: map[models.Role]int{models.RoleAdmin: 404}},
	"POST /contacts/:id<int>/erase":          {path: "/contacts/999999/erase", anon: 401, staff: 403, roles: map[models.Role]int{models.RoleAdmin: 404}},
	"GET /simulator":                         {anon: 303, staff: 200, roles: map[models.Role]int{models.RoleViewer: 403}},
	"POST /simulator":                        {anon: 401, staff: 400, roles: map[models.Role]int{models.RoleViewer: 403}}, // nothing written
	"GET /login":                             {anon: 200, staff: 200},
	"POST /login":                            {anon: 401, staff: 401}, // no credentials in the matrix's request
	"POST /logout":                           {anon: 401, staff: 303},
	"GET /api/v1/me":                         {anon: 401, staff: 200},
	"GET /api/v1/staff":                      {anon: 401, staff: 403, roles: map[models.Role]int{models.RoleAdmin: 200}},
	"POST /api/v1/staff":                     {anon: 401, staff: 403, roles: map[models.Role]int{models.RoleAdmin: 400}}, // the matrix sends no staff member
	"GET /api/v1/openapi.json":               {anon: 200, staff: 200},
	"GET /api/v1/conversations":              {anon: 401, staff: 200},
	"GET /api/v1/conversations/:id<int>":     {path: "/api/v1/conversations/999999", anon: 401, staff: 404},
	"GET /api/v1/handoffs":                   {anon: 401, staff: 200},
	"GET /api/v1/contacts/:id<int>":          {path: "/api/v1/contacts/999999", anon: 401, staff: 404},
	"GET /api/v1/contacts/:id<int>/messages": {path: "/api/v1/contacts/999999/messages", anon: 401, staff: 404},
	// The matrix posts a form, not JSON: refused as invalid to those who may.
	"POST /api/v1/contacts/:id<int>/reply":  {path: "/api/v1/contacts/999999/reply", anon: 401, staff: 400, roles: map[models.Role]int{models.RoleViewer: 403}},
	"POST /api/v1/messages/:id<int>/resend": {path: "/api/v1/messages/999999/resend", anon: 401, staff: 404, roles: map[models.Role]int{models.RoleViewer: 403}},
	"POST /api/v1/messages/resend":          {anon: 401, staff: 400, roles: map[models.Role]int{models.RoleViewer: 403}},
	"POST /api/v1/conversations/:id<int>/override": {path: "/api/v1/conversations/999999/override", anon: 401, staff: 400,
		roles: map[models.Role]int{models.RoleViewer: 403}},
	"POST /api/v1/conversations/:id<int>/take": {path: "/api/v1/conversations/999999/take", anon: 401, staff: 404, roles: map[models.Role]int{models.RoleViewer: 403}},
	"GET /api/v1/audit":                        {anon: 401, staff: 403, roles: map[models.Role]int{models.RoleSupervisor: 200, models.RoleAdmin: 200}},
	"GET /api/v1/audit/verify":                 {anon: 401, staff: 403, roles: map[models.Role]int{models.RoleSupervisor: 200, models.RoleAdmin: 200}},
	"DELETE /api/v1/staff/:id": {path: "/api/v1/staff/00000000-0000-4000-8000-000000000000", anon: 401, staff: 403,
		roles: map[models.Role]int{models.RoleAdmin: 404}},
	"PATCH /api/v1/staff/:id": {path: "/api/v1/staff/00000000-0000-4000-8000-000000000000", anon: 401, staff: 403,
		roles: map[models.Role]int{models.RoleAdmin: 400}},
	// Notes, tags and saved replies (desk_test.go tests what they do).
	"GET /contacts/:id<int>/notes":                    {path: "/contacts/999999/notes", anon: 303, staff: 404},
	"POST /contacts/:id<int>/notes":                   {path: "/contacts/999999/notes", anon: 401, staff: 404, roles: map[models.Role]int{models.RoleViewer: 403}},
	"POST /notes/:id<int>":                            {path: "/notes/999999", anon: 401, staff: 400, roles: map[models.Role]int{models.RoleViewer: 403}}, // empty: refused before the lookup
	"POST /notes/:id<int>/delete":                     {path: "/notes/999999/delete", anon: 401, staff: 404, roles: map[models.Role]int{models.RoleViewer: 403}},
	"GET /contacts/:id<int>/tags":                     {path: "/contacts/999999/tags", anon: 303, staff: 200}, // no open conversation: nothing to tag
	"POST /conversations/:id<int>/tags":               {path: "/conversations/999999/tags", anon: 401, staff: 404, roles: map[models.Role]int{models.RoleViewer: 403}},
	"POST /conversations/:id<int>/untag":              {path: "/conversations/999999/untag", anon: 401, staff: 404, roles: map[models.Role]int{models.RoleViewer: 403}},
	"GET /contacts/:id<int>/saved-replies":            {path: "/contacts/999999/saved-replies", anon: 303, staff: 200, roles: map[models.Role]int{models.RoleViewer: 403}},
	"GET /contacts/:id<int>/saved-reply":              {path: "/contacts/999999/saved-reply?saved=999999", anon: 303, staff: 404, roles: map[models.Role]int{models.RoleViewer: 403}},
	"GET /saved-replies":                              {anon: 303, staff: 403, roles: map[models.Role]int{models.RoleSupervisor: 200, models.RoleAdmin: 200}},
	"POST /saved-replies":                             {anon: 401, staff: 403, roles: map[models.Role]int{models.RoleSupervisor: 422, models.RoleAdmin: 422}}, // empty: the form again
	"POST /saved-replies/:id<int>":                    {path: "/saved-replies/999999", anon: 401, staff: 403, roles: map[models.Role]int{models.RoleSupervisor: 422, models.RoleAdmin: 422}},
	"POST /saved-replies/:id<int>/delete":             {path: "/saved-replies/999999/delete", anon: 401, staff: 403, roles: map[models.Role]int{models.RoleSupervisor: 404, models.RoleAdmin: 404}},
	"GET /api/v1/contacts/:id<int>/notes":             {path: "/api/v1/contacts/999999/notes", anon: 401, staff: 404},
	"POST /api/v1/contacts/:id<int>/notes":            {path: "/api/v1/contacts/999999/notes", anon: 401, staff: 400, roles: map[models.Role]int{models.RoleViewer: 403}},
	"PATCH /api/v1/notes/:id<int>":                    {path: "/api/v1/notes/999999", anon: 401, staff: 400, roles: map[models.Role]int{models.RoleViewer: 403}},
	"DELETE /api/v1/notes/:id<int>":                   {path: "/api/v1/notes/999999", anon: 401, staff: 404, roles: map[models.Role]int{models.RoleViewer: 403}},
	"GET /api/v1/conversations/:id<int>/tags":         {path: "/api/v1/conversations/999999/tags", anon: 401, staff: 404},
	"POST /api/v1/conversations/:id<int>/tags":        {path: "/api/v1/conversations/999999/tags", anon: 401, staff: 400, roles: map[models.Role]int{models.RoleViewer: 403}},
	"DELETE /api/v1/conversations/:id<int>/tags/:tag": {path: "/api/v1/conversations/999999/tags/vip", anon: 401, staff: 204, roles: map[models.Role]int{models.RoleViewer: 403}},
	"GET /api/v1/saved-replies":                       {anon: 401, staff: 200, roles: map[models.Role]int{models.RoleViewer: 403}},
	"POST /api/v1/saved-replies":                      {anon: 401, staff: 403, roles: map[models.Role]int{models.RoleSupervisor: 400, models.RoleAdmin: 400}},
	"PUT /api/v1/saved-replies/:id<int>":              {path: "/api/v1/saved-replies/999999", anon: 401, staff: 403, roles: map[models.Role]int{models.RoleSupervisor: 400, models.RoleAdmin: 400}},
	"DELETE /api/v1/saved-replies/:id<int>":           {path: "/api/v1/saved-replies/999999", anon: 401, staff: 403, roles: map[models.Role]int{models.RoleSupervisor: 404, models.RoleAdmin: 404}},
	"GET /api/v1/contacts/:id<int>/saved-replies/:reply<int>": {path: "/api/v1/contacts/999999/saved-replies/999999", anon: 401, staff: 404,
		roles: map[models.Role]int{models.RoleViewer: 403}},
	// Starting conversations and planning messages: supervisors and admins
	// (no number, or a form for JSON, sent: refused as invalid to them).
	"GET /start":                 {anon: 303, staff: 403, roles: map[models.Role]int{models.RoleSupervisor: 200, models.RoleAdmin: 200}},
	"POST /start":                {anon: 401, staff: 403, roles: map[models.Role]int{models.RoleSupervisor: 400, models.RoleAdmin: 400}},
	"POST /api/v1/conversations": {anon: 401, staff: 403, roles: map[models.Role]int{models.RoleSupervisor: 400, models.RoleAdmin: 400}},
	"POST /api/v1/contacts/:id<int>/scheduled": {path: "/api/v1/contacts/999999/scheduled", anon: 401, staff: 403,
		roles: map[models.Role]int{models.RoleSupervisor: 400, models.RoleAdmin: 400}},
	"DELETE /api/v1/scheduled/:id<int>": {path: "/api/v1/scheduled/999999", anon: 401, staff: 403,
		roles: map[models.Role]int{models.RoleSupervisor: 404, models.RoleAdmin: 404}},
	"GET /auth/v1/.well-known/jwks.json": {anon: 200, staff: 200},
	"POST /auth/v1/token":                {anon: 400, staff: 400},
	"POST /webhooks/twilio":              {anon: 403, staff: 403}, // unsigned: refused whoever sends it
	"POST /webhooks/twilio/status":       {anon: 403, staff: 403},
	"GET /webhooks/meta":                 {anon: 403, staff: 403},
	"POST /webhooks/meta":                {anon: 403, staff: 403},
	"POST /webhooks/siren":               {anon: 403, staff: 403},
	// Broadcasts are for supervisors and admins.
	"GET /broadcasts":                          {anon: 303, staff: 403, roles: map[models.Role]int{models.RoleSupervisor: 200, models.RoleAdmin: 200}},
	"POST /broadcasts":                         {anon: 401, staff: 403, roles: map[models.Role]int{models.RoleSupervisor: 400, models.RoleAdmin: 400}}, // nothing planned
	"GET /broadcasts/:id<int>":                 {path: "/broadcasts/999999", anon: 303, staff: 403, roles: map[models.Role]int{models.RoleSupervisor: 404, models.RoleAdmin: 404}},
	"GET /broadcasts/:id<int>/progress":        {path: "/broadcasts/999999/progress", anon: 303, staff: 403, roles: map[models.Role]int{models.RoleSupervisor: 404, models.RoleAdmin: 404}},
	"POST /broadcasts/:id<int>/confirm":        {path: "/broadcasts/999999/confirm", anon: 401, staff: 403, roles: map[models.Role]int{models.RoleSupervisor: 404, models.RoleAdmin: 404}},
	"POST /broadcasts/:id<int>/pause":          {path: "/broadcasts/999999/pause", anon: 401, staff: 403, roles: map[models.Role]int{models.RoleSupervisor: 404, models.RoleAdmin: 404}},
	"POST /broadcasts/:id<int>/resume":         {path: "/broadcasts/999999/resume", anon: 401, staff: 403, roles: map[models.Role]int{models.RoleSupervisor: 404, models.RoleAdmin: 404}},
	"POST /broadcasts/:id<int>/cancel":         {path: "/broadcasts/999999/cancel", anon: 401, staff: 403, roles: map[models.Role]int{models.RoleSupervisor: 404, models.RoleAdmin: 404}},
	"GET /api/v1/broadcasts":                   {anon: 401, staff: 403, roles: map[models.Role]int{models.RoleSupervisor: 200, models.RoleAdmin: 200}},
	"POST /api/v1/broadcasts":                  {anon: 401, staff: 403, roles: map[models.Role]int{models.RoleSupervisor: 400, models.RoleAdmin: 400}}, // a form, not JSON
	"GET /api/v1/broadcasts/:id<int>":          {path: "/api/v1/broadcasts/999999", anon: 401, staff: 403, roles: map[models.Role]int{models.RoleSupervisor: 404, models.RoleAdmin: 404}},
	"POST /api/v1/broadcasts/:id<int>/confirm": {path: "/api/v1/broadcasts/999999/confirm", anon: 401, staff: 403, roles: map[models.Role]int{models.RoleSupervisor: 404, models.RoleAdmin: 404}},
	"POST /api/v1/broadcasts/:id<int>/pause":   {path: "/api/v1/broadcasts/999999/pause", anon: 401, staff: 403, roles: map[models.Role]int{models.RoleSupervisor: 404, models.RoleAdmin: 404}},
	"POST /api/v1/broadcasts/:id<int>/resume":  {path: "/api/v1/broadcasts/999999/resume", anon: 401, staff: 403, roles: map[models.Role]int{models.RoleSupervisor: 404, models.RoleAdmin: 404}},
	"POST /api/v1/broadcasts/:id<int>/cancel":  {path: "/api/v1/broadcasts/999999/cancel", anon: 401, staff: 403, roles: map[models.Role]int{models.RoleSupervisor: 404, models.RoleAdmin: 404}},
}

// fullServer is the server with every part: webhooks, the API, the console.
type fullServer struct {
	base   string
	app    *fiber.App
	staff  *store.StaffStore
	local  *auth.LocalIssuer
	db     *store.DB
	crypto store.Crypto
	pipe   *pipeline.Pipeline
}

func newFullServer(t *testing.T) *fullServer { return newFullServerWith(t, nil) }

// newFullServerWith is the full server whose pipeline sends through
// senders (by provider; nil: none), not started.
func newFullServerWith(t *testing.T, senders map[string]channel.Sender) *fullServer {
	t.Helper()
	db := pgtest.Open(t)
	crypto := newCryptoForTest(t)
	readiness, _ := store.NewReadiness(db)
	reg := prometheus.NewRegistry()
	metrics := pipeline.NewMetrics(reg)
	deps := pipeline.Deps{DB: db, Crypto: crypto, Metrics: metrics, Logger: slog.New(slog.DiscardHandler),
		Responder: pipeline.NewFlows(engine.Builtin(), db, crypto), Senders: senders}
	if senders != nil {
		deps.Config = pipeline.Config{SendRate: 1000, SendBurst: 100}
	} else {
		deps.Senders = map[string]channel.Sender{channel.Simulator: simulator.Sender{}}
	}
	pipe, err := pipeline.New(deps)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = pipe.Stop(context.Background()) })
	s := &fullServer{staff: store.NewStaffStore(db), db: db, crypto: crypto, pipe: pipe}
	s.local, _ = auth.NewLocalIssuer(localIssuerURL, []byte(strings.Repeat("k", 32)), time.Hour)
	verifier, _ := auth.NewVerifier(auth.VerifierConfig{Issuer: localIssuerURL, Keys: s.local.Keys()})
	access := &handlers.Access{Verifier: verifier, Staff: s.staff, Local: &handlers.LocalProvider{Issuer: s.local, Directory: s.staff},
		Audit: store.NewAuditStore(db, crypto), Personal: store.PersonalData{Contacts: store.NewContactStore(db, crypto), Audit: store.NewAuditStore(db, crypto)}}
	inbox := &handlers.Inbox{Messages: store.NewMessageStore(db, crypto), Contacts: store.NewContactStore(db, crypto), Actions: pipe, Simulator: pipe, Media: store.NewMediaStore(db, crypto),
		PollEvery: 10 * time.Millisecond, StreamFor: 50 * time.Millisecond, Flows: pipe,
		Convs: store.NewConversationStore(db, crypto), Counts: store.NewDashboardStore(db), Tags: store.NewTagStore(db)}
	console := &handlers.Console{Access: access, Provider: handlers.LocalSignIn{LocalProvider: access.Local, Staff: s.staff},
		Sessions: store.NewSessionStore(db, crypto), Codecs: []securecookie.Codec{securecookie.New([]byte(strings.Repeat("h", 32)), nil)},
		CSRFKey: []byte(strings.Repeat("c", 32))}
	s.app = handlers.NewServer(handlers.Deps{Logger: slog.New(slog.DiscardHandler), Readiness: readiness, Registry: reg, Version: "test",
		Metrics: handlers.MetricsAccess{Token: strings.Repeat("m", 32)},
		Access:  access, Console: console, Inbox: inbox, Admin: newAdmin(db, crypto), Dashboard: &handlers.Dashboard{Counts: store.NewDashboardStore(db), Flows: pipe},
		Desk: newDesk(db, crypto, s.staff), Broadcasts: &handlers.Broadcasts{Actions: pipe},
		Webhooks: &handlers.Webhooks{Pipeline: pipe, Metrics: metrics, Twilio: twilio.NewVerifier(publicURL, authToken),
			MetaAppSecret: appSecret, MetaVerifyToken: verifyToken, SirenSecret: sirenSecret}})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = s.app.Listener(ln) }()
	t.Cleanup(func() { _ = s.app.Shutdown() })
	s.base = "http://" + ln.Addr().String()
	return s
}

// newDesk is the console's and the API's notes, tags and saved replies
// over db, as serve wires them.
func newDesk(db *store.DB, crypto store.Crypto, staff handlers.StaffLookup) *handlers.Desk {
	convs := store.NewConversationStore(db, crypto)
	return &handlers.Desk{Staff: staff, Convs: convs, Actions: &desk.Service{NoteStore: store.NewNoteStore(db, crypto), TagStore: store.NewTagStore(db),
		ReplyStore: store.NewSavedReplyStore(db), Convs: convs, Contacts: store.NewContactStore(db, crypto), Audit: store.NewAuditStore(db, crypto)}}
}

// newAdmin is the console's administration over db.
func newAdmin(db *store.DB, crypto store.Crypto) *handlers.Admin {
	return &handlers.Admin{Audit: store.NewAuditStore(db, crypto), System: &handlers.System{DB: db, Providers: []string{"simulator", "twilio"},
		ActiveKey: crypto.Ring.ActiveKeyID(), Rotations: store.NewRotator(db, crypto.Ring), Breakers: map[string]func() string{"Text model": func() string { return "closed" }}}}
}

// credentials are a caller's staff id, session cookie, CSRF token and
// bearer token.
type credentials struct{ id, cookie, csrf, bearer string }

func (s *fullServer) signIn(t *testing.T, role models.Role) credentials {
	t.Helper()
	email := string(role) + "@example.org"
	hash, _ := auth.HashPassword("matrix password!")
	u, err := s.staff.Create(context.Background(), "", email, role, hash)
	if err != nil {
		t.Fatal(err)
	}
	site := &consoleSite{base: s.base}
	b := &browser{site: site}
	if resp := b.signIn(t, email, "matrix password!", "/"); resp.StatusCode != 303 {
		t.Fatalf("sign-in as %s: %d", role, resp.StatusCode)
	}
	_, page := b.do(t, "GET", "/", nil, nil)
	m := csrfRE.FindStringSubmatch(page)
	if m == nil {
		t.Fatalf("no CSRF token for %s", role)
	}
	bearer, _, _ := s.local.Issue(u, "")
	return credentials{id: u.ID, cookie: b.cookie, csrf: m[1], bearer: bearer}
}

// TestAuthorisationMatrix asks every route as every caller; the API's
// answers, errors included, are checked against its OpenAPI document.
func TestAuthorisationMatrix(t *testing.T) {
	s := newFullServer(t)
	doc := loadAPIDoc(t, s.base)
	creds := map[who]credentials{anonymous: {}}
	for _, c := range callers[1:] {
		creds[c] = s.signIn(t, models.Role(c))
	}
	var routes []string
	seen := map[string]bool{}
	for _, r := range s.app.GetRoutes(true) {
		if r.Method == fiber.MethodHead || r.Method == fiber.MethodOptions { // HEAD follows GET
			continue
		}
		key := r.Method + " " + r.Path
		if !seen[key] {
			seen[key] = true
			routes = append(routes, key)
		}
	}
	// Sign-out ends the sessions it is given: it goes last.
	sort.Slice(routes, func(i, j int) bool {
		if (routes[i] == "POST /logout") != (routes[j] == "POST /logout") {
			return routes[j] == "POST /logout"
		}
		return routes[i] < routes[j]
	})
	for _, key := range routes {
		rl, ok := rules[key]
		if !ok {
			t.Errorf("route %s has no rule in the authorisation matrix", key)
			continue
		}
		method, path, _ := strings.Cut(key, " ")
		if rl.path != "" {
			path = rl.path
		}
		for _, c := range callers {
			want := rl.staff
			if c == anonymous {
				want = rl.anon
			} else if st, ok := rl.roles[models.Role(c)]; ok {
				want = st
			}
			cr := creds[c]
			var body io.Reader
			if method == fiber.MethodPost {
				body = strings.NewReader(url.Values{"_csrf": {cr.csrf}}.Encode())
			}
			req, _ := http.NewRequest(method, s.base+path, body)
			if method == fiber.MethodPost {
				req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			}
			if cr.cookie != "" {
				req.Header.Set("Cookie", "parley_session="+cr.cookie)
			}
			if cr.bearer != "" && strings.HasPrefix(path, "/api/") {
				req.Header.Set("Authorization", "Bearer "+cr.bearer)
			}
			resp, err := (&http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}).Do(req)
			if err != nil {
				t.Fatal(err)
			}
			raw, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if strings.HasPrefix(path, "/api/v1/") {
				doc.check(t, method, path, resp.StatusCode, raw)
			}
			if resp.StatusCode != want {
				t.Errorf("%s as %s: %d, want %d", key, c, resp.StatusCode, want)
			}
		}
	}
}
