// Package meta is Parley's adapter for Meta's WhatsApp Cloud API: the
// webhook handshake, X-Hub-Signature-256 over the raw body, event parsing
// (several messages and statuses per delivery), sending through the Graph
// API and fetching media through its id.
package meta

import (
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"strconv"
	"strings"
	"time"

	"github.com/parley-chat/parley/internal/channel"
	"github.com/parley-chat/parley/models"
)

// VerifySignature reports whether header (X-Hub-Signature-256,
// "sha256=<hex>") is the HMAC-SHA256 of the raw body under the app secret.
func VerifySignature(appSecret string, body []byte, header string) bool {
	hexSig, ok := strings.CutPrefix(header, "sha256=")
	if !ok || appSecret == "" {
		return false
	}
	got, err := hex.DecodeString(hexSig)
	if err != nil {
		return false
	}
	m := hmac.New(sha256.New, []byte(appSecret))
	m.Write(body)
	return hmac.Equal(got, m.Sum(nil))
}

// VerifyChallenge answers the subscription handshake: the challenge when
// mode and token match, ok=false otherwise.
func VerifyChallenge(verifyToken, mode, token, challenge string) (string, bool) {
	if verifyToken == "" || mode != "subscribe" || subtle.ConstantTimeCompare([]byte(token), []byte(verifyToken)) != 1 {
		return "", false
	}
	return challenge, true
}

type payload struct {
	Object string `json:"object"`
	Entry  []struct {
		Changes []struct {
			Field string `json:"field"`
			Value struct {
				Contacts []struct {
					Profile struct {
						Name string `json:"name"`
					} `json:"profile"`
					WaID string `json:"wa_id"`
				} `json:"contacts"`
				Messages []message `json:"messages"`
				Statuses []struct {
					ID     string `json:"id"`
					Status string `json:"status"`
					Errors []struct {
						Code int `json:"code"`
					} `json:"errors"`
				} `json:"statuses"`
			} `json:"value"`
		} `json:"changes"`
	} `json:"entry"`
}

type mediaObject struct {
	ID       string `json:"id"`
	MimeType string `json:"mime_type"`
	Caption  string `json:"caption"`
}

type message struct {
	From        string                 `json:"from"`
	ID          string                 `json:"id"`
	Timestamp   string                 `json:"timestamp"`
	Type        string                 `json:"type"`
	Text        *struct{ Body string } `json:"text"`
	Image       *mediaObject           `json:"image"`
	Audio       *mediaObject           `json:"audio"`
	Video       *mediaObject           `json:"video"`
	Document    *mediaObject           `json:"document"`
	Sticker     *mediaObject           `json:"sticker"`
	Button      *struct{ Text string } `json:"button"`
	Interactive *struct {
		ButtonReply *struct{ Title string } `json:"button_reply"`
		ListReply   *struct{ Title string } `json:"list_reply"`
	} `json:"interactive"`
}

// Events is what one webhook delivery carries.
type Events struct {
	Messages []channel.Inbound
	Statuses []channel.Status
	Ignored  int // events of kinds Parley does not handle
}

var statuses = map[string]models.MessageStatus{
	"sent": models.StatusSent, "delivered": models.StatusDelivered, "read": models.StatusRead, "failed": models.StatusFailed,
}

// Parse reads a webhook body. It returns EINVALID for malformed JSON or a
// message without its id or sender; an object other than a WhatsApp
// business account is ignored whole.
func Parse(body []byte) (Events, error) {
	var p payload
	var ev Events
	if err := json.Unmarshal(body, &p); err != nil {
		return ev, models.Errorf(models.EINVALID, "Body is not valid JSON.")
	}
	if p.Object != "whatsapp_business_account" {
		ev.Ignored++
		return ev, nil
	}
	for _, e := range p.Entry {
		for _, ch := range e.Changes {
			names := map[string]string{}
			for _, c := range ch.Value.Contacts {
				names[c.WaID] = c.Profile.Name
			}
			for _, m := range ch.Value.Messages {
				in, ok, err := inbound(m, names[m.From])
				if err != nil {
					return Events{}, err
				}
				if !ok {
					ev.Ignored++
					continue
				}
				ev.Messages = append(ev.Messages, in)
			}
			for _, s := range ch.Value.Statuses {
				st, known := statuses[s.Status]
				if s.ID == "" || !known {
					ev.Ignored++
					continue
				}
				out := channel.Status{Provider: channel.Meta, ProviderMessageID: s.ID, Status: st}
				if len(s.Errors) > 0 {
					out.ErrorCode = strconv.Itoa(s.Errors[0].Code)
					out.Reason = reasons[s.Errors[0].Code] // 131047 and 131026 often come this way
				}
				ev.Statuses = append(ev.Statuses, out)
			}
		}
	}
	return ev, nil
}

func inbound(m message, profileName string) (channel.Inbound, bool, error) {
	if m.ID == "" || m.From == "" {
		return channel.Inbound{}, false, models.Errorf(models.EINVALID, "A message lacks its id or sender.")
	}
	in := channel.Inbound{Provider: channel.Meta, ProviderMessageID: m.ID, From: "whatsapp:+" + strings.TrimPrefix(m.From, "+"), ProfileName: profileName}
	if secs, err := strconv.ParseInt(m.Timestamp, 10, 64); err == nil {
		t := time.Unix(secs, 0).UTC()
		in.Timestamp = &t
	}
	addMedia := func(o *mediaObject) {
		in.Media = append(in.Media, channel.Media{Ref: o.ID, ContentType: o.MimeType})
		in.Body = o.Caption
	}
	switch {
	case m.Text != nil:
		in.Body = m.Text.Body
	case m.Image != nil:
		addMedia(m.Image)
	case m.Audio != nil:
		addMedia(m.Audio)
	case m.Video != nil:
		addMedia(m.Video)
	case m.Document != nil:
		addMedia(m.Document)
	case m.Sticker != nil:
		addMedia(m.Sticker)
	case m.Button != nil:
		in.Body = m.Button.Text
	case m.Interactive != nil && m.Interactive.ButtonReply != nil:
		in.Body = m.Interactive.ButtonReply.Title
	case m.Interactive != nil && m.Interactive.ListReply != nil:
		in.Body = m.Interactive.ListReply.Title
	default:
		return in, false, nil // reactions, locations, system messages …
	}
	for _, md := range in.Media {
		if md.Ref == "" {
			return in, false, models.Errorf(models.EINVALID, "A media message lacks its media id.")
		}
	}
	if err := channel.Sanitize(&in); err != nil {
		return in, false, err
	}
	return in, true, nil
}
