// Package twiliotest signs webhooks the way Twilio does, independently of
// twilio-go, and runs a fake of Twilio's REST API that speaks its JSON and
// its errors, for tests that send through the real twilio-go client.
package twiliotest

import (
	"crypto/hmac"
	"crypto/sha1"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Sign returns X-Twilio-Signature for a POST to url with params: the URL
// followed by each parameter's key and value, keys sorted bytewise,
// HMAC-SHA1 under the auth token, standard base64.
func Sign(authToken, url string, params map[string]string) string {
	keys := make([]string, 0, len(params))
	for k := range params {
		keys = append(keys, k)
	}
	sort.Strings(keys) // bytewise
	var b strings.Builder
	b.WriteString(url)
	for _, k := range keys {
		b.WriteString(k)
		b.WriteString(params[k])
	}
	m := hmac.New(sha1.New, []byte(authToken))
	m.Write([]byte(b.String()))
	return base64.StdEncoding.EncodeToString(m.Sum(nil))
}

// Sent is one message the fake accepted.
// A template send has ContentSID and ContentVariables (the JSON as
// sent) and Body rendered from the content's text.
type Sent struct {
	SID, To, From, Body, MessagingServiceSID, StatusCallback string
	ContentSID, ContentVariables                             string
	Created                                                  time.Time
}

// Failure is an error answer the fake gives instead of accepting.
type Failure struct {
	HTTPStatus int
	Code       int // Twilio error code; 0 for a bare 5xx with no JSON
	Message    string
	// Stall accepts the message (it counts as sent) and then never
	// answers, until the caller gives up: an outcome the caller cannot know.
	Stall bool
}

// Common failures, as Twilio answers them.
var (
	RateLimited  = Failure{HTTPStatus: 429, Code: 20429, Message: "Too Many Requests"}
	Unsubscribed = Failure{HTTPStatus: 400, Code: 21610, Message: "Attempt to send to unsubscribed recipient"}
	InvalidTo    = Failure{HTTPStatus: 400, Code: 21211, Message: "The 'To' number is not a valid phone number."}
	ServerError  = Failure{HTTPStatus: 500, Code: 20500, Message: "Internal Server Error"}
	// AcceptThenStall is a Twilio that took the message and then hung.
	AcceptThenStall = Failure{Stall: true}
)

// API is a fake Twilio REST API.
type API struct {
	*httptest.Server
	AccountSID, AuthToken string

	mu       sync.Mutex
	sent     []Sent
	failures []Failure
	media    map[string][]byte
	moved    map[string]string // media name → where it redirects
	contents []Content
	// ContentPageSize, when set, is the most contents a page of the
	// Content API lists, so a test sees several pages.
	ContentPageSize int
	// ContentPages counts the Content list pages served.
	ContentPages int
	seq          atomic.Int64
	conns        atomic.Int64
	// Notify, when set, receives every accepted message.
	Notify chan Sent
	// Delay, when set, holds each answer this long after the message was
	// taken: a slow Twilio, so a crash can find sends in flight.
	Delay time.Duration
	// MaxConcurrent, when set, answers a message create that arrives while
	// so many are being answered already 429 with Twilio's 20429 body and
	// a Retry-After of RetryAfter seconds (when set): a rate limit.
	MaxConcurrent int
	RetryAfter    int

	inFlight, mostInFlight, limited atomic.Int64
}

// MostInFlight is the largest number of message creates the fake was
// answering at once.
func (a *API) MostInFlight() int { return int(a.mostInFlight.Load()) }

// InFlight is how many message creates the fake is answering now.
func (a *API) InFlight() int { return int(a.inFlight.Load()) }

// Limited counts the creates refused with 429 for MaxConcurrent.
func (a *API) Limited() int { return int(a.limited.Load()) }

// NewAPI starts a fake for the account; close it with Close.
func NewAPI(accountSID, authToken string) *API {
	a := &API{AccountSID: accountSID, AuthToken: authToken, media: map[string][]byte{}, moved: map[string]string{}}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /2010-04-01/Accounts/{sid}/Messages.json", a.createMessage)
	mux.HandleFunc("GET /2010-04-01/Accounts/{sid}/Messages.json", a.listMessages)
	mux.HandleFunc("GET /media/{name}", a.getMedia)
	mux.HandleFunc("GET /v1/Content", a.listContent)
	mux.HandleFunc("GET /v1/Content/{sid}/ApprovalRequests", a.approval)
	a.Server = httptest.NewUnstartedServer(mux)
	a.Server.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			a.conns.Add(1)
		}
	}
	a.Server.Start()
	return a
}

// Conns counts the connections clients opened so far.
func (a *API) Conns() int { return int(a.conns.Load()) }

// FailNext makes the next calls fail, in order.
func (a *API) FailNext(f ...Failure) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.failures = append(a.failures, f...)
}

// Sent returns the messages accepted so far.
func (a *API) Sent() []Sent {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]Sent(nil), a.sent...)
}

// AddRedirect serves, at the returned URL and behind the account's Basic
// auth, a redirect to target: what Twilio's media URLs answer, pointing at
// signed storage.
func (a *API) AddRedirect(name, target string) string {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.moved[name] = target
	return a.URL + "/media/" + name
}

// AddMedia serves data at the returned URL, behind the account's Basic auth.
func (a *API) AddMedia(name string, data []byte) string {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.media[name] = data
	return a.URL + "/media/" + name
}

func writeError(w http.ResponseWriter, f Failure) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(f.HTTPStatus)
	if f.Code == 0 {
		return
	}
	_ = json.NewEncoder(w).Encode(map[string]any{
		"code": f.Code, "message": f.Message, "more_info": fmt.Sprintf("https://www.twilio.com/docs/errors/%d", f.Code), "status": f.HTTPStatus,
	})
}

func (a *API) authorized(r *http.Request) bool {
	user, pass, ok := r.BasicAuth()
	return ok && user == a.AccountSID && pass == a.AuthToken
}

func (a *API) createMessage(w http.ResponseWriter, r *http.Request) {
	if !a.authorized(r) || r.PathValue("sid") != a.AccountSID {
		writeError(w, Failure{HTTPStatus: 401, Code: 20003, Message: "Authenticate"})
		return
	}
	now := a.inFlight.Add(1)
	defer a.inFlight.Add(-1)
	for most := a.mostInFlight.Load(); now > most && !a.mostInFlight.CompareAndSwap(most, now); most = a.mostInFlight.Load() {
	}
	if a.MaxConcurrent > 0 && now > int64(a.MaxConcurrent) {
		a.limited.Add(1)
		if a.RetryAfter > 0 {
			w.Header().Set("Retry-After", strconv.Itoa(a.RetryAfter))
		}
		writeError(w, RateLimited)
		return
	}
	if err := r.ParseForm(); err != nil {
		writeError(w, Failure{HTTPStatus: 400, Code: 21100, Message: "Invalid form"})
		return
	}
	to, from, mss := r.PostForm.Get("To"), r.PostForm.Get("From"), r.PostForm.Get("MessagingServiceSid")
	switch {
	case to == "":
		writeError(w, Failure{HTTPStatus: 400, Code: 21604, Message: "A 'To' phone number is required."})
		return
	case from == "" && mss == "":
		writeError(w, Failure{HTTPStatus: 400, Code: 21603, Message: "A 'From' phone number is required."})
		return
	case from != "" && strings.HasPrefix(to, "whatsapp:") != strings.HasPrefix(from, "whatsapp:"):
		writeError(w, Failure{HTTPStatus: 400, Code: 21910, Message: "Invalid 'From' and 'To' pair. 'From' and 'To' should be of the same channel"})
		return
	case r.PostForm.Get("Body") == "" && r.PostForm.Get("MediaUrl") == "" && r.PostForm.Get("ContentSid") == "":
		writeError(w, Failure{HTTPStatus: 400, Code: 21602, Message: "Message body is required."})
		return
	}
	body := r.PostForm.Get("Body")
	if sid := r.PostForm.Get("ContentSid"); sid != "" {
		var refusal *Failure
		if body, refusal = a.render(sid, r.PostForm.Get("ContentVariables")); refusal != nil {
			writeError(w, *refusal)
			return
		}
	}
	a.mu.Lock()
	stall := false
	if len(a.failures) > 0 {
		f := a.failures[0]
		a.failures = a.failures[1:]
		if !f.Stall {
			a.mu.Unlock()
			writeError(w, f)
			return
		}
		stall = true
	}
	s := Sent{SID: fmt.Sprintf("SM%032d", a.seq.Add(1)), To: to, From: from, Body: body,
		ContentSID: r.PostForm.Get("ContentSid"), ContentVariables: r.PostForm.Get("ContentVariables"), MessagingServiceSID: mss, StatusCallback: r.PostForm.Get("StatusCallback"), Created: time.Now().UTC().Truncate(time.Second)}
	a.sent = append(a.sent, s)
	a.mu.Unlock()
	if stall {
		<-r.Context().Done()
		return
	}
	if a.Delay > 0 {
		select {
		case <-time.After(a.Delay):
		case <-r.Context().Done():
			return
		}
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusCreated)
	_ = json.NewEncoder(w).Encode(map[string]any{
		"sid": s.SID, "account_sid": a.AccountSID, "to": s.To, "from": s.From, "body": s.Body, "status": "queued",
		"num_segments": "1", "direction": "outbound-api", "api_version": "2010-04-01", "messaging_service_sid": nilIfEmpty(mss),
		"uri": fmt.Sprintf("/2010-04-01/Accounts/%s/Messages/%s.json", a.AccountSID, s.SID),
	})
	if a.Notify != nil {
		a.Notify <- s
	}
}

// listMessages answers the Messages list as Twilio does: newest first,
// filtered by To and From when given, one page of PageSize (50 by
// default), dates in RFC 2822.
func (a *API) listMessages(w http.ResponseWriter, r *http.Request) {
	if !a.authorized(r) || r.PathValue("sid") != a.AccountSID {
		writeError(w, Failure{HTTPStatus: 401, Code: 20003, Message: "Authenticate"})
		return
	}
	q := r.URL.Query()
	size, err := strconv.Atoi(q.Get("PageSize"))
	if err != nil || size <= 0 {
		size = 50
	}
	a.mu.Lock()
	var page []map[string]any
	for i := len(a.sent) - 1; i >= 0 && len(page) < size; i-- {
		s := a.sent[i]
		if (q.Get("To") != "" && s.To != q.Get("To")) || (q.Get("From") != "" && s.From != q.Get("From")) {
			continue
		}
		page = append(page, map[string]any{"sid": s.SID, "account_sid": a.AccountSID, "to": s.To, "from": s.From, "body": s.Body,
			"status": "sent", "direction": "outbound-api", "date_created": s.Created.Format(time.RFC1123Z),
			"date_sent": s.Created.Format(time.RFC1123Z), "uri": fmt.Sprintf("/2010-04-01/Accounts/%s/Messages/%s.json", a.AccountSID, s.SID)})
	}
	a.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(map[string]any{"messages": page, "page": 0, "page_size": size, "start": 0, "end": max(len(page)-1, 0),
		"first_page_uri": r.URL.RequestURI(), "next_page_uri": nil, "previous_page_uri": nil, "uri": r.URL.RequestURI()})
}

func nilIfEmpty(s string) any {
	if s == "" {
		return nil
	}
	return s
}

func (a *API) getMedia(w http.ResponseWriter, r *http.Request) {
	if !a.authorized(r) {
		writeError(w, Failure{HTTPStatus: 401, Code: 20003, Message: "Authenticate"})
		return
	}
	a.mu.Lock()
	data, ok := a.media[r.PathValue("name")]
	target, moved := a.moved[r.PathValue("name")]
	a.mu.Unlock()
	if moved {
		http.Redirect(w, r, target, http.StatusTemporaryRedirect)
		return
	}
	if !ok {
		writeError(w, Failure{HTTPStatus: 404, Code: 20404, Message: "The requested resource was not found"})
		return
	}
	ct := "image/jpeg"
	if strings.HasSuffix(r.PathValue("name"), ".ogg") {
		ct = "audio/ogg"
	}
	w.Header().Set("Content-Type", ct)
	_, _ = w.Write(data)
}
