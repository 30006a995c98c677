package models

import (
	"regexp"
	"slices"
	"strings"
	"time"
	"unicode/utf8"
)

// Note is a staff member's note on a contact, for colleagues: never sent
// to the contact. Body is personal and kept sealed.
type Note struct {
	ID        int64     `json:"id"`
	ContactID int64     `json:"contact_id"`
	AuthorID  string    `json:"author_id"` // "" once the author's account is gone
	Body      string    `json:"body"`
	CreatedAt time.Time `json:"created_at"`
	UpdatedAt time.Time `json:"updated_at"`
}

// MaxNote is the longest note, in characters.
const MaxNote = 2000

// CleanNote trims a note's text and checks its length: EINVALID when it
// is empty or too long (the message names the limit, not the text).
func CleanNote(body string) (string, error) {
	body = strings.TrimSpace(body)
	switch n := utf8.RuneCountInString(body); {
	case n == 0:
		return "", Errorf(EINVALID, "Write the note first.")
	case n > MaxNote:
		return "", Errorf(EINVALID, "A note is at most %d characters.", MaxNote)
	}
	return body, nil
}

// Tag is one short word on a conversation.
type Tag struct {
	ConversationID int64     `json:"conversation_id"`
	Tag            string    `json:"tag"`
	CreatedAt      time.Time `json:"created_at"`
}

// MaxTags is how many tags one conversation carries at most.
const MaxTags = 10

var tagPattern = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]{0,31}$`)

// CleanTag normalises a typed tag (trimmed, lower case, spaces as
// hyphens) and checks it: 1-32 of a-z, 0-9, "-" and "_", starting with a
// letter or digit. EINVALID otherwise. Tags are free words rather than a
// managed list so staff tag in the course of their work; normalising
// keeps "Follow up" and "follow-up" one tag.
func CleanTag(s string) (string, error) {
	s = strings.Join(strings.Fields(strings.ToLower(s)), "-")
	if !tagPattern.MatchString(s) {
		return "", Errorf(EINVALID, "A tag is 1-32 letters a-z, digits, \"-\" or \"_\", starting with a letter or digit.")
	}
	return s, nil
}

// SavedReply is a reply staff can pick instead of typing it: the
// business's text with {{variables}} filled from the conversation.
type SavedReply struct {
	ID        int64     `json:"id"`
	Title     string    `json:"title"`
	Body      string    `json:"body"`
	UpdatedAt time.Time `json:"updated_at"`
}

// Clean trims the reply's title and body and checks their lengths.
func (r *SavedReply) Clean() error {
	r.Title, r.Body = strings.TrimSpace(r.Title), strings.TrimSpace(r.Body)
	switch {
	case r.Title == "":
		return Errorf(EINVALID, "Give the saved reply a title.")
	case utf8.RuneCountInString(r.Title) > 80:
		return Errorf(EINVALID, "A title is at most 80 characters.")
	case r.Body == "":
		return Errorf(EINVALID, "Write the reply's text.")
	case utf8.RuneCountInString(r.Body) > 4096:
		return Errorf(EINVALID, "A reply is at most 4096 characters.")
	}
	return nil
}

var replyVar = regexp.MustCompile(`\{\{\s*([A-Za-z0-9_.-]+)\s*\}\}`)

// Render fills the reply's {{variables}} from vars. A variable vars lacks
// (or holds empty) is left as written, "{{name}}", and listed in missing,
// so the person sending sees the gap rather than send a blank.
func (r *SavedReply) Render(vars map[string]string) (text string, missing []string) {
	seen := map[string]bool{}
	text = replyVar.ReplaceAllStringFunc(r.Body, func(m string) string {
		name := replyVar.FindStringSubmatch(m)[1]
		if v := strings.TrimSpace(vars[name]); v != "" {
			return v
		}
		if !seen[name] {
			seen[name] = true
			missing = append(missing, name)
		}
		return "{{" + name + "}}"
	})
	return text, missing
}

// Unfilled names the {{variables}} a text still holds as written: a saved
// reply's gap its sender did not fill.
func Unfilled(text string) []string {
	var names []string
	for _, m := range replyVar.FindAllStringSubmatch(text, -1) {
		if !slices.Contains(names, m[1]) {
			names = append(names, m[1])
		}
	}
	return names
}
