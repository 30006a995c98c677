// Package engine is Parley's conversation state machine: flow definitions
// read from YAML and validated at load, and a pure Step that takes a
// conversation's state and one input and returns the new state and the
// actions to carry out. It does no I/O.
package engine

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strings"
	"time"

	"github.com/expr-lang/expr/vm"
	"go.yaml.in/yaml/v3"

	"github.com/parley-chat/parley/internal/textnorm"

	_ "time/tzdata" // flow time zones resolve the same on every machine, tzdata installed or not
)

// Text is a message in several languages. In YAML it is a map from language
// to text, or a plain string in the flow's default language.
type Text map[string]string

// UnmarshalYAML accepts a plain string as the default language's text.
func (t *Text) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind == yaml.ScalarNode {
		*t = Text{"": n.Value}
		return nil
	}
	m := map[string]string{}
	if err := n.Decode(&m); err != nil {
		return err
	}
	*t = m
	return nil
}

// In returns the text in lang, else in the flow's default language.
func (t Text) In(lang, def string) string {
	if s, ok := t[lang]; ok && lang != "" {
		return s
	}
	if s, ok := t[def]; ok {
		return s
	}
	return t[""]
}

// Flow is one conversation definition.
type Flow struct {
	ID        string           `yaml:"id"`
	Languages []string         `yaml:"languages"`
	Start     string           `yaml:"start"`
	Nodes     map[string]*Node `yaml:"nodes"`
	Keywords  Keywords         `yaml:"keywords"`
	MaxSteps  int              `yaml:"max_steps"`
	// Timezone is where "today" and "tomorrow" are read (an IANA name,
	// like Asia/Kolkata; UTC when unset).
	Timezone string `yaml:"timezone"`
	location *time.Location
	// TruncatedNote is sent before the replies to a message longer than
	// MaxInput characters, of which only the first MaxInput were read.
	TruncatedNote Text `yaml:"truncated_note"`
	// UnheardNote answers a voice note Parley could not turn into words
	// where the flow waits for words (a default in several languages
	// unless set).
	UnheardNote Text `yaml:"unheard_note"`
	// HandoffNote is said when a question's retries run out and it names no
	// exhausted node, as the contact is handed to a person.
	HandoffNote Text `yaml:"handoff_note"`
	// Warnings are what validation found doubtful but runnable (a question
	// without a retry limit): `parley flows validate` prints them.
	Warnings []*Error `yaml:"-"`
	// Version is the content hash of the file: a running conversation pins
	// it, so editing the file never changes a conversation in progress.
	Version string `yaml:"-"`
	File    string `yaml:"-"`
	Source  []byte `yaml:"-"` // the file's content, kept with conversations pinned to it
}

// tz is the flow's time zone, UTC unless it names one.
func (f *Flow) tz() *time.Location {
	if f.location == nil {
		return time.UTC
	}
	return f.location
}

// Node is one step of a flow: exactly one of its kinds is set.
type Node struct {
	ID         string        `yaml:"-"`
	Send       Text          `yaml:"send"`
	Ask        *Ask          `yaml:"ask"`
	Branch     []*BranchCase `yaml:"branch"`
	AIClassify *AIClassify   `yaml:"ai_classify"`
	AIExtract  *AIExtract    `yaml:"ai_extract"`
	Handoff    *Final        `yaml:"handoff"`
	End        *Final        `yaml:"end"`
	Schedule   *Schedule     `yaml:"schedule"` // plan a message for later, and go on
	Next       string        `yaml:"next"`
	// Template, on a send node, is what is sent instead of Send when
	// WhatsApp's 24-hour window is closed.
	Template *TemplateUse `yaml:"template"`
}

// Final is a handoff or an end, with an optional message and the
// template sent instead of it when WhatsApp's window is closed.
type Final struct {
	Send     Text         `yaml:"send"`
	Template *TemplateUse `yaml:"template"`
}

// TemplateUse names an approved WhatsApp template to send in place of a
// node's text when the contact last wrote more than 24 hours ago (the
// only thing WhatsApp then takes); without one, a conversation that must
// speak then is handed to a person.
type TemplateUse struct {
	Name string `yaml:"name"`
	// Language is the template's language code as the platform spells it
	// (en, en_US, hi); unset, the conversation's language.
	Language string `yaml:"language"`
	// Params are the template's parameters ("1", "2", … or names) and
	// their values, which may use the conversation's variables
	// ("{{name}}").
	Params map[string]string `yaml:"params"`
}

// Ask asks a question and waits for a typed answer.
type Ask struct {
	Prompt  Text       `yaml:"prompt"`
	Type    string     `yaml:"type"` // text, number, choice, yes_no, date, phone, email, media
	Length  []int      `yaml:"length"`
	Range   []float64  `yaml:"range"`
	Choices []*Choice  `yaml:"choices"`
	Save    string     `yaml:"save"`
	Retry   *Retry     `yaml:"retry"`
	Timeout *Timeout   `yaml:"timeout"`
	Next    string     `yaml:"next"` // where to go after a valid answer (else the node's next)
	Routes  RouteByKey `yaml:"routes"`
	// Template is sent instead of Prompt when WhatsApp's window is closed.
	Template *TemplateUse `yaml:"template"`
	// Schema, on a media question, has the fields it describes read off
	// the photo sent (as ai_extract does), saved Save_ prefixed when Save
	// is set; Fallback (else Next) is where it goes when they cannot be
	// read: no photo, the service off or unsure.
	Schema        map[string]any `yaml:"schema"`
	Fallback      string         `yaml:"fallback"`
	MinConfidence float64        `yaml:"min_confidence"`

	extract *AIExtract // the schema as an extraction, once validated
}

// RouteByKey sends a choice's value (or yes/no) to a node of its own.
type RouteByKey map[string]string

// Choice is one option of a menu.
type Choice struct {
	Value    string   `yaml:"value"`
	Label    Text     `yaml:"label"`
	Synonyms []string `yaml:"synonyms"`
}

// Retry is what happens after an answer that does not fit: the prompt is
// asked again up to Limit answers (DefaultRetryLimit when unset), then the
// flow goes to Exhausted, or hands the contact to a person when it is unset.
type Retry struct {
	Prompt    Text   `yaml:"prompt"`
	Limit     int    `yaml:"limit"`
	Exhausted string `yaml:"exhausted"`
}

// retryLimit is the answers that do not fit before the question gives
// up: its own limit, else DefaultRetryLimit.
func (a *Ask) retryLimit() int {
	if a.Retry != nil && a.Retry.Limit > 0 {
		return a.Retry.Limit
	}
	return DefaultRetryLimit
}

// Timeout reminds, then gives up waiting.
type Timeout struct {
	RemindAfter Duration `yaml:"remind_after"`
	Remind      Text     `yaml:"remind"`
	ExpireAfter Duration `yaml:"expire_after"`
	Then        string   `yaml:"then"`
	// RemindTemplate is sent instead of Remind when WhatsApp's window
	// has closed by the time the reminder is due.
	RemindTemplate *TemplateUse `yaml:"remind_template"`
}

// Duration reads "2h", "30m" or "1d".
type Duration time.Duration

// UnmarshalYAML parses Go durations plus a "d" suffix for days.
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	s := strings.TrimSpace(n.Value)
	if days, ok := strings.CutSuffix(s, "d"); ok {
		v, err := time.ParseDuration(days + "h")
		if err != nil {
			return fmt.Errorf("bad duration %q", s)
		}
		*d = Duration(24 * v)
		return nil
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return fmt.Errorf("bad duration %q", s)
	}
	*d = Duration(v)
	return nil
}

// BranchCase is one condition of a branch: when (an expr-lang expression
// over the conversation's variables) then next; or else.
type BranchCase struct {
	When    string      `yaml:"when"`
	Next    string      `yaml:"next"`
	Else    string      `yaml:"else"`
	program *vm.Program `yaml:"-"`
}

// Keywords are words that act wherever the conversation stands, in any of
// the flow's languages. Defaults apply to those a flow leaves out.
type Keywords struct {
	Stop    []string `yaml:"stop"`
	Start   []string `yaml:"start"`
	Help    []string `yaml:"help"`
	Restart []string `yaml:"restart"`
	// Replies to the keywords.
	StopReply  Text `yaml:"stop_reply"`
	StartReply Text `yaml:"start_reply"`
	HelpReply  Text `yaml:"help_reply"`

	kind map[string]string // normalised keyword → stop, start, help or restart
}

// Parse reads and validates a flow file's content; file names it in errors.
func Parse(file string, data []byte) (*Flow, error) {
	var f Flow
	dec := yaml.NewDecoder(strings.NewReader(string(data)))
	dec.KnownFields(true)
	if err := dec.Decode(&f); err != nil {
		return nil, &Error{File: file, Problem: "not a valid flow: " + err.Error()}
	}
	sum := sha256.Sum256(data)
	f.Version, f.File, f.Source = hex.EncodeToString(sum[:8]), file, data
	for id, n := range f.Nodes {
		if n == nil {
			return nil, &Error{File: file, Node: id, Problem: "node is empty"}
		}
		n.ID = id
	}
	f.Keywords.defaults()
	if f.TruncatedNote == nil {
		f.TruncatedNote = Text{"": fmt.Sprintf("(Your message was long: I read only its first %d characters.)", MaxInput)}
	}
	if f.UnheardNote == nil {
		f.UnheardNote = DefaultUnheardNote
	}
	if f.HandoffNote == nil {
		f.HandoffNote = DefaultHandoffNote
	}
	if f.MaxSteps <= 0 {
		f.MaxSteps = DefaultMaxSteps
	}
	f.location = time.UTC
	if f.Timezone != "" {
		loc, err := time.LoadLocation(f.Timezone)
		if err != nil || f.Timezone == "Local" {
			return nil, &Error{File: file, Problem: fmt.Sprintf("timezone %q is not a time zone name (use one like Asia/Kolkata, or UTC)", f.Timezone)}
		}
		f.location = loc
	}
	if err := validate(&f); err != nil {
		return nil, err
	}
	return &f, nil
}

// DefaultMaxSteps bounds the nodes one input may run through, so a bad flow
// cannot loop.
const DefaultMaxSteps = 100

// DefaultRetryLimit is the answers that do not fit a question takes
// before its retries run out, when the question sets no limit: a contact
// who cannot answer is handed to a person rather than asked for ever.
const DefaultRetryLimit = 3

// Error is a problem in a flow definition, naming the file and node.
type Error struct {
	File, Node, Problem string
}

func (e *Error) Error() string {
	if e.Node == "" {
		return fmt.Sprintf("%s: %s", e.File, e.Problem)
	}
	return fmt.Sprintf("%s: node %q: %s", e.File, e.Node, e.Problem)
}

// lang returns the flow's default language.
func (f *Flow) lang() string {
	if len(f.Languages) > 0 {
		return f.Languages[0]
	}
	return ""
}

// DefaultUnheardNote is what a flow says to a voice note it could not
// hear, unless it says otherwise.
var DefaultUnheardNote = Text{
	"":   "Sorry, I couldn't listen to that. Could you type it?",
	"hi": "माफ़ कीजिए, मैं वह सुन नहीं पाया। क्या आप उसे लिखकर भेज सकते हैं?",
	"ta": "மன்னிக்கவும், அதைக் கேட்க முடியவில்லை. தட்டச்சு செய்து அனுப்ப முடியுமா?",
	"es": "Lo siento, no pude escucharlo. ¿Podría escribirlo?",
	"fr": "Désolé, je n'ai pas pu l'écouter. Pouvez-vous l'écrire ?",
}

// DefaultHandoffNote is what a flow says when a question's retries run
// out without an exhausted node, unless it says otherwise.
var DefaultHandoffNote = Text{
	"":   "A person from our team will reply here shortly.",
	"hi": "हमारी टीम का कोई व्यक्ति जल्द ही यहाँ जवाब देगा।",
}

// DefaultKeywords are the keywords of a flow that sets none of its own.
func DefaultKeywords() Keywords {
	var k Keywords
	k.defaults()
	return k
}

// Kind says which keyword text is: "stop", "start", "help", "restart",
// or "" for none.
func (k Keywords) Kind(text string) string { return k.kind[normalize(text)] }

func (k *Keywords) defaults() {
	if len(k.Stop) == 0 {
		k.Stop = []string{"stop", "stopall", "unsubscribe", "cancel", "end", "quit", "optout", "बंद", "रुको"}
	}
	if len(k.Start) == 0 {
		k.Start = []string{"start", "unstop", "subscribe", "optin", "शुरू"}
	}
	if len(k.Help) == 0 {
		k.Help = []string{"help", "info", "मदद", "உதவி"}
	}
	if len(k.Restart) == 0 {
		k.Restart = []string{"menu", "restart", "मेनू"}
	}
	if k.StopReply == nil {
		k.StopReply = Text{"": "You will get no more messages from us. Reply START to join again."}
	}
	if k.StartReply == nil {
		k.StartReply = Text{"": "Welcome back! You will get our messages again."}
	}
	if k.HelpReply == nil {
		k.HelpReply = Text{"": "Reply MENU to start over, or STOP to get no more messages."}
	}
	k.kind = map[string]string{}
	for kind, list := range map[string][]string{"stop": k.Stop, "start": k.Start, "help": k.Help, "restart": k.Restart} {
		for _, w := range list {
			k.kind[normalize(w)] = kind
		}
	}
}

// normalize is how answers and keywords are compared: their words,
// case-folded, joined by single spaces.
func normalize(s string) string { return strings.Join(textnorm.Words(s), " ") }
