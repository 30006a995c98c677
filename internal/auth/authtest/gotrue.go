package authtest

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"strings"
	"time"

	"github.com/google/uuid"
)

// AnonKey is the fake project's anon key; every request must carry it as
// apikey, as Supabase's gateway requires.
const AnonKey = "anon-key-for-tests"

type user struct {
	id, email, password string
	appRole             string // app_metadata.role
	banned, invited     bool
}

type session struct {
	user    *user
	ended   bool
	refresh string // the one refresh token that is still good
}

// AddUser creates a confirmed email user and returns its id.
func (p *Project) AddUser(email, password string) string {
	p.mu.Lock()
	defer p.mu.Unlock()
	u := &user{id: uuid.NewString(), email: email, password: password}
	p.users[strings.ToLower(email)] = u
	return u.id
}

// Refreshes counts refresh grants answered.
func (p *Project) Refreshes() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.refreshes
}

func (p *Project) registerGoTrue(mux *http.ServeMux) {
	mux.HandleFunc("POST /auth/v1/token", p.token)
	mux.HandleFunc("GET /auth/v1/user", p.user)
	mux.HandleFunc("POST /auth/v1/logout", p.logout)
	p.registerAdmin(mux)
}

func gotrueError(w http.ResponseWriter, status int, code, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]any{"code": status, "error_code": code, "msg": msg})
}

func randomToken() string {
	b := make([]byte, 12)
	_, _ = rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

func (p *Project) token(w http.ResponseWriter, r *http.Request) {
	if r.Header.Get("apikey") != AnonKey {
		gotrueError(w, 401, "no_api_key", "No API key found in request")
		return
	}
	var in struct {
		Email, Password string
		RefreshToken    string `json:"refresh_token"`
	}
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<16)).Decode(&in); err != nil {
		gotrueError(w, 400, "bad_json", "Could not parse request body as JSON")
		return
	}
	sid, u, refresh, code := p.grant(r.URL.Query().Get("grant_type"), in.Email, in.Password, in.RefreshToken)
	if code != "" {
		msg := map[string]string{"invalid_credentials": "Invalid login credentials", "user_banned": "User is banned",
			"refresh_token_not_found": "Invalid Refresh Token: Refresh Token Not Found"}[code]
		gotrueError(w, 400, code, msg)
		return
	}
	claims := p.Claims(u.id, u.email)
	claims.SessionID = sid
	access := p.Sign(claims)
	exp := claims.ExpiresAt.Time
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(map[string]any{
		"access_token": access, "token_type": "bearer", "expires_in": int(time.Until(exp).Seconds()), "expires_at": exp.Unix(),
		"refresh_token": refresh,
		"user": map[string]any{"id": u.id, "aud": "authenticated", "role": "authenticated", "email": u.email,
			"app_metadata": map[string]any{"provider": "email"}, "user_metadata": map[string]any{}},
	})
}

// grant answers a password or refresh grant: the session, its user and
// its new (single-use) refresh token, or GoTrue's error code.
func (p *Project) grant(kind, email, password, refreshToken string) (sid string, u *user, refresh, code string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	var s *session
	switch kind {
	case "password":
		u := p.users[strings.ToLower(email)]
		if u == nil || u.password == "" || u.password != password {
			return "", nil, "", "invalid_credentials"
		}
		if u.banned {
			return "", nil, "", "user_banned"
		}
		sid, s = uuid.NewString(), &session{user: u}
		p.sessions[sid] = s
	case "refresh_token":
		for id, candidate := range p.sessions {
			if !candidate.ended && candidate.refresh == refreshToken && refreshToken != "" {
				sid, s = id, candidate
			}
		}
		if s == nil {
			return "", nil, "", "refresh_token_not_found"
		}
		p.refreshes++
	default:
		return "", nil, "", "unsupported_grant_type"
	}
	s.refresh = randomToken() // single use: the old one is gone
	return sid, s.user, s.refresh, ""
}

// sessionOf returns the live session an access token names, or nil.
func (p *Project) sessionOf(r *http.Request) (string, *session) {
	token, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !ok {
		return "", nil
	}
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		return "", nil
	}
	raw, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return "", nil
	}
	var c struct {
		SessionID string `json:"session_id"`
	}
	_ = json.Unmarshal(raw, &c)
	p.mu.Lock()
	defer p.mu.Unlock()
	s := p.sessions[c.SessionID]
	if s == nil || s.ended {
		return c.SessionID, nil
	}
	return c.SessionID, s
}

func (p *Project) user(w http.ResponseWriter, r *http.Request) {
	_, s := p.sessionOf(r)
	if s == nil {
		gotrueError(w, 403, "session_not_found", "Session from session_id claim in JWT does not exist")
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(map[string]any{"id": s.user.id, "aud": "authenticated", "role": "authenticated", "email": s.user.email})
}

func (p *Project) logout(w http.ResponseWriter, r *http.Request) {
	sid, s := p.sessionOf(r)
	if s == nil {
		gotrueError(w, 403, "session_not_found", "Session from session_id claim in JWT does not exist")
		return
	}
	p.mu.Lock()
	if r.URL.Query().Get("scope") == "local" {
		p.sessions[sid].ended = true
	} else {
		for _, other := range p.sessions {
			if other.user == s.user {
				other.ended = true
			}
		}
	}
	p.mu.Unlock()
	w.WriteHeader(http.StatusNoContent)
}

// LiveSessions counts the user's sessions not signed out.
func (p *Project) LiveSessions(userID string) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := 0
	for _, s := range p.sessions {
		if s.user.id == userID && !s.ended {
			n++
		}
	}
	return n
}

// ServiceRoleKey authorises the fake's admin API.
const ServiceRoleKey = "service-role-key-for-tests"

// AppRole is the role mirrored into a user's app_metadata, "" when none.
func (p *Project) AppRole(id string) string {
	p.mu.Lock()
	defer p.mu.Unlock()
	if u := p.byID(id); u != nil {
		return u.appRole
	}
	return ""
}

// Banned reports whether a user is banned.
func (p *Project) Banned(id string) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	u := p.byID(id)
	return u != nil && u.banned
}

// byID finds a user; p.mu is held.
func (p *Project) byID(id string) *user {
	for _, u := range p.users {
		if u.id == id {
			return u
		}
	}
	return nil
}

func (p *Project) registerAdmin(mux *http.ServeMux) {
	mux.HandleFunc("POST /auth/v1/admin/users", p.admin(p.adminCreate))
	mux.HandleFunc("GET /auth/v1/admin/users/{id}", p.admin(p.adminGet))
	mux.HandleFunc("PUT /auth/v1/admin/users/{id}", p.admin(p.adminUpdate))
	mux.HandleFunc("DELETE /auth/v1/admin/users/{id}", p.admin(p.adminDelete))
	mux.HandleFunc("POST /auth/v1/invite", p.admin(p.invite))
}

// admin lets through only requests with the service-role key, as GoTrue's
// admin routes do.
func (p *Project) admin(next http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer "+ServiceRoleKey {
			gotrueError(w, 403, "not_admin", "User not allowed")
			return
		}
		next(w, r)
	}
}

func userJSON(u *user) map[string]any {
	j := map[string]any{"id": u.id, "aud": "authenticated", "role": "authenticated", "email": u.email,
		"app_metadata": map[string]any{"provider": "email", "role": u.appRole}, "user_metadata": map[string]any{}}
	if u.banned { // GoTrue answers the ban's end; the fake's bans are long
		j["banned_until"] = time.Now().Add(876000 * time.Hour).UTC().Format(time.RFC3339Nano)
	}
	return j
}

func (p *Project) adminGet(w http.ResponseWriter, r *http.Request) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.broken[r.PathValue("id")] {
		gotrueError(w, 500, "unexpected_failure", "Unexpected failure, please check server logs for more information")
		return
	}
	u := p.byID(r.PathValue("id"))
	if u == nil {
		gotrueError(w, 404, "user_not_found", "User not found")
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(userJSON(u))
}

// Break makes the admin look-up of user id fail with GoTrue's 500
// (unexpected_failure), as for a user row Auth cannot read.
func (p *Project) Break(id string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.broken == nil {
		p.broken = map[string]bool{}
	}
	p.broken[id] = true
}

func (p *Project) adminCreate(w http.ResponseWriter, r *http.Request) {
	var in struct {
		Email, Password string
		AppMetadata     map[string]any `json:"app_metadata"`
	}
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<16)).Decode(&in); err != nil || in.Email == "" {
		gotrueError(w, 400, "validation_failed", "Unable to validate email address")
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.users[strings.ToLower(in.Email)] != nil {
		gotrueError(w, 422, "email_exists", "A user with this email address has already been registered")
		return
	}
	u := &user{id: uuid.NewString(), email: in.Email, password: in.Password}
	u.appRole, _ = in.AppMetadata["role"].(string)
	p.users[strings.ToLower(in.Email)] = u
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(userJSON(u))
}

func (p *Project) invite(w http.ResponseWriter, r *http.Request) {
	var in struct{ Email string }
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<16)).Decode(&in); err != nil || in.Email == "" {
		gotrueError(w, 400, "validation_failed", "Unable to validate email address")
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.users[strings.ToLower(in.Email)] != nil {
		gotrueError(w, 422, "email_exists", "A user with this email address has already been registered")
		return
	}
	u := &user{id: uuid.NewString(), email: in.Email, invited: true}
	p.users[strings.ToLower(in.Email)] = u
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(userJSON(u))
}

func (p *Project) adminUpdate(w http.ResponseWriter, r *http.Request) {
	var in struct {
		AppMetadata map[string]any `json:"app_metadata"`
		BanDuration *string        `json:"ban_duration"`
	}
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<16)).Decode(&in); err != nil {
		gotrueError(w, 400, "bad_json", "Could not parse request body as JSON")
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	u := p.byID(r.PathValue("id"))
	if u == nil {
		gotrueError(w, 404, "user_not_found", "User not found")
		return
	}
	if role, ok := in.AppMetadata["role"]; ok { // PUT merges app_metadata keys
		u.appRole, _ = role.(string)
	}
	if in.BanDuration != nil {
		if *in.BanDuration == "none" {
			u.banned = false
		} else if _, err := time.ParseDuration(*in.BanDuration); err == nil {
			u.banned = true
		} else {
			gotrueError(w, 400, "validation_failed", "invalid format for ban duration")
			return
		}
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(userJSON(u))
}

func (p *Project) adminDelete(w http.ResponseWriter, r *http.Request) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for email, u := range p.users {
		if u.id == r.PathValue("id") {
			delete(p.users, email)
			w.Header().Set("Content-Type", "application/json")
			_, _ = w.Write([]byte("{}"))
			return
		}
	}
	gotrueError(w, 404, "user_not_found", "User not found")
}

// HasUser reports whether the project still has the user.
func (p *Project) HasUser(id string) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.byID(id) != nil
}

// HasEmail reports whether the project has a user with this email.
func (p *Project) HasEmail(email string) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.users[strings.ToLower(email)] != nil
}
