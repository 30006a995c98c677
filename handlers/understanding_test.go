package handlers_test

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/parley-chat/parley/handlers"
	"github.com/parley-chat/parley/internal/ai"
	"github.com/parley-chat/parley/internal/ai/geminitest"
	"github.com/parley-chat/parley/internal/ai/sarvamtest"
	"github.com/parley-chat/parley/internal/channel"
	"github.com/parley-chat/parley/internal/channel/meta"
	"github.com/parley-chat/parley/internal/channel/meta/metatest"
	"github.com/parley-chat/parley/internal/engine"
	"github.com/parley-chat/parley/internal/pgtest"
	"github.com/parley-chat/parley/internal/pipeline"
	"github.com/parley-chat/parley/internal/store"
	"github.com/parley-chat/parley/models"
)

// voiceSite is the real server with Meta's webhook, a pipeline running
// the intake flow, and fakes of the Graph API, Sarvam and Gemini.
type voiceSite struct {
	base   string
	db     *store.DB
	graph  *metatest.API
	sarvam *sarvamtest.API
	gemini *geminitest.API
}

func fixtureFile(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile("../internal/ai/testdata/" + name)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// withoutSpeech builds the site with speech-to-text off.
const withoutSpeech = true

func newVoiceSite(t *testing.T, hold time.Duration, speechOff ...bool) *voiceSite {
	t.Helper()
	s := &voiceSite{db: pgtest.Open(t), graph: metatest.New(t), sarvam: sarvamtest.New(t), gemini: geminitest.New(t)}
	crypto := newCryptoForTest(t)
	flow, err := engine.Parse("intake.yaml", fixtureFile(t, "intake.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	mc, err := meta.NewClient(meta.Config{AccessToken: metatest.Token, PhoneNumberID: metatest.PhoneNumberID, BaseURL: s.graph.BaseURL()})
	if err != nil {
		t.Fatal(err)
	}
	vision, err := ai.NewVision(context.Background(), ai.VisionConfig{BaseURL: s.gemini.URL, APIKey: geminitest.Key})
	if err != nil {
		t.Fatal(err)
	}
	var speech pipeline.Speech = ai.NewSpeech(ai.SpeechConfig{BaseURL: s.sarvam.URL, APIKey: sarvamtest.Key, Retries: -1})
	if len(speechOff) > 0 && speechOff[0] {
		speech = nil
	}
	reg := prometheus.NewRegistry()
	metrics := pipeline.NewMetrics(reg)
	pipe, err := pipeline.New(pipeline.Deps{DB: s.db, Crypto: crypto, Metrics: metrics, Logger: slog.New(slog.DiscardHandler),
		Responder: pipeline.NewFlows(engine.NewLibrary(flow), s.db, crypto),
		Senders:   map[string]channel.Sender{channel.Meta: mc}, Fetchers: map[string]channel.MediaFetcher{channel.Meta: mc},
		Speech: speech, Vision: vision,
		Config: pipeline.Config{SendRate: 1000, SendBurst: 100, RetryBase: 50 * time.Millisecond, MaxAITries: 2, UnderstandHold: hold}})
	if err != nil {
		t.Fatal(err)
	}
	if err := pipe.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = pipe.Stop(context.Background()) })
	readiness, _ := store.NewReadiness(s.db)
	app := handlers.NewServer(handlers.Deps{Logger: slog.New(slog.DiscardHandler), Readiness: readiness, Registry: reg, Version: "test",
		Webhooks: &handlers.Webhooks{Pipeline: pipe, Metrics: metrics, MetaAppSecret: appSecret, MetaVerifyToken: verifyToken}})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = app.Listener(ln) }()
	t.Cleanup(func() { _ = app.Shutdown() })
	s.base = "http://" + ln.Addr().String()
	return s
}

// send posts one signed WhatsApp message from waID: text, or an
// attachment by media id (audio or image).
func (s *voiceSite) send(t *testing.T, waID, id, kind, payload string) {
	t.Helper()
	var msg string
	switch kind {
	case "text":
		msg = fmt.Sprintf(`{"from":%q,"id":%q,"timestamp":"%d","type":"text","text":{"body":%q}}`, waID, id, time.Now().Unix(), payload)
	case "audio":
		msg = fmt.Sprintf(`{"from":%q,"id":%q,"timestamp":"%d","type":"audio","audio":{"id":%q,"mime_type":"audio/ogg; codecs=opus","voice":true}}`, waID, id, time.Now().Unix(), payload)
	case "image":
		msg = fmt.Sprintf(`{"from":%q,"id":%q,"timestamp":"%d","type":"image","image":{"id":%q,"mime_type":"image/jpeg","sha256":"x"}}`, waID, id, time.Now().Unix(), payload)
	}
	body := []byte(fmt.Sprintf(`{"object":"whatsapp_business_account","entry":[{"id":"1","changes":[{"field":"messages","value":{
		"messaging_product":"whatsapp","metadata":{"display_phone_number":"15550000000","phone_number_id":%q},
		"contacts":[{"profile":{"name":"Asha"},"wa_id":%q}],"messages":[%s]}}]}]}`, metatest.PhoneNumberID, waID, msg))
	h := &hooks{base: s.base}
	if status, resp, _ := h.post(t, "/webhooks/meta", "application/json", body, map[string]string{"X-Hub-Signature-256": signMeta(body)}); status != 200 {
		t.Fatalf("webhook: %d %s", status, resp)
	}
}

// replies are the bodies sent to waID so far.
func (s *voiceSite) replies(waID string) []string {
	var out []string
	for _, m := range s.graph.Sent() {
		if m.To == waID {
			out = append(out, m.Body)
		}
	}
	return out
}

// expect waits until waID has been sent want, in order, and nothing else.
func (s *voiceSite) expect(t *testing.T, waID string, want ...string) {
	t.Helper()
	waitFor(t, fmt.Sprintf("replies %q", want), func() bool { return len(s.replies(waID)) >= len(want) })
	if got := s.replies(waID); strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("sent %q, want %q", got, want)
	}
}

// Voice notes in English and Hindi arrive by a signed WhatsApp webhook,
// are fetched and transcribed, and answer a question asking for words;
// the Hindi speaker's conversation goes on in Hindi. The long note is cut
// into parts under the 30-second limit and answers too. A photo of the
// appointment card answers the extraction step. Staff read the
// transcripts, and search finds spoken words.
func TestVoiceNotesAndPhotosAnswerTheFlow(t *testing.T) {
	s := newVoiceSite(t, 0)
	en, hi, long, card := fixtureFile(t, "voice-note-en.ogg"), fixtureFile(t, "voice-note-hi.ogg"), fixtureFile(t, "voice-note-long.ogg"), fixtureFile(t, "appointment-card.jpg")
	s.graph.AddMedia("voice-en", "audio/ogg", en)
	s.graph.AddMedia("voice-hi", "audio/ogg", hi)
	s.graph.AddMedia("voice-long", "audio/ogg", long)
	s.graph.AddMedia("card", "image/jpeg", card)
	s.sarvam.Says(en, sarvamtest.Said{Text: "My name is Asha and I need an appointment on Monday", Language: "en-IN"})
	s.sarvam.Says(hi, sarvamtest.Said{Text: "मेरा नाम आशा है और मुझे सोमवार को डॉक्टर से मिलना है", Language: "hi-IN"})
	s.gemini.Sees(card, geminitest.Seen{Description: "An appointment card: Asha Verma, Dr. R. Iyer, Monday 14 December, 10:30.",
		Fields: map[string]any{"date": "2026-12-14", "doctor": "Dr. R. Iyer"}, Confidence: 0.93})
	ctx := context.Background()

	const asha, sunita, ravi = "919876543210", "919812345678", "919800000001"
	s.send(t, asha, "wamid.E1", "text", "hi")
	s.expect(t, asha, "What is your name?")
	s.send(t, asha, "wamid.E2", "audio", "voice-en")
	s.expect(t, asha, "What is your name?", "Thank you. Please send a photo of your appointment card.")
	s.send(t, asha, "wamid.E3", "image", "card")
	s.expect(t, asha, "What is your name?", "Thank you. Please send a photo of your appointment card.", "Booked with Dr. R. Iyer on 2026-12-14.")

	s.send(t, sunita, "wamid.H1", "text", "नमस्ते")
	s.expect(t, sunita, "What is your name?")
	s.send(t, sunita, "wamid.H2", "audio", "voice-hi")
	s.expect(t, sunita, "What is your name?", "धन्यवाद। कृपया अपने अपॉइंटमेंट कार्ड की फ़ोटो भेजें।")

	s.send(t, ravi, "wamid.L1", "text", "hello")
	s.expect(t, ravi, "What is your name?")
	s.send(t, ravi, "wamid.L2", "audio", "voice-long")
	s.expect(t, ravi, "What is your name?", "Thank you. Please send a photo of your appointment card.")
	parts := 0
	for _, c := range s.sarvam.Calls() {
		if c.Seconds > 30 || c.Status != 200 {
			t.Errorf("Sarvam was sent %.1f s of audio and answered %d", c.Seconds, c.Status)
		}
		if c.Seconds > 20 {
			parts++
		}
	}
	if parts < 4 {
		t.Errorf("the long note went in %d long parts, want it cut under 30 s", parts)
	}

	// What was said is sealed; staff read it decrypted; the variable holds it.
	var plain, sealed, usage, spoken int
	_ = s.db.Pool.QueryRow(ctx, `SELECT count(*) FILTER (WHERE position('Asha'::bytea in coalesce(text_enc, ''::bytea)) > 0),
		count(*) FILTER (WHERE understanding = 'done' AND text_enc IS NOT NULL) FROM media`).Scan(&plain, &sealed)
	_ = s.db.Pool.QueryRow(ctx, `SELECT count(*) FILTER (WHERE (provider = 'sarvam' AND audio_seconds > 3) OR (provider = 'gemini' AND prompt_tokens > 0)),
		count(*) FILTER (WHERE provider = 'sarvam' AND conversation_id IS NOT NULL) FROM ai_usage`).Scan(&usage, &spoken)
	// Three notes and a card understood; usage: three notes (each against
	// its conversation), a description, an extraction.
	if plain != 0 || sealed != 4 || usage != 5 || spoken != 3 {
		t.Fatalf("transcripts in the clear %d, understood %d, usage rows %d (%d for speech in a conversation)", plain, sealed, usage, spoken)
	}
	crypto := newCryptoForTest(t)
	convs := store.NewConversationStore(s.db, crypto)
	contacts := store.NewContactStore(s.db, crypto)
	found, err := contacts.FindByPhone(ctx, "+"+sunita)
	if err != nil || len(found) != 1 {
		t.Fatalf("Sunita: %v %v", found, err)
	}
	conv, err := convs.Open(ctx, nil, found[0].ID)
	if err != nil || conv == nil || conv.Language != "hi" || !strings.HasPrefix(conv.Variables["said"], "मेरा नाम आशा") {
		t.Fatalf("Sunita's conversation: %+v %v", conv, err)
	}
	messages := store.NewMessageStore(s.db, crypto)
	page, err := messages.Search(ctx, models.MessageSearch{Text: "appointment monday", Limit: 10})
	if err != nil || len(page.Hits) != 1 {
		t.Fatalf("searching spoken words: %d hits, %v", len(page.Hits), err)
	}
}

// When the speech service is out, a voice note still gets an answer: the
// question asks for the answer typed, the conversation waits where it
// was, and staff see why on the attachment.
func TestVoiceNote_DuringAnOutageAsksForWords(t *testing.T) {
	s := newVoiceSite(t, 0)
	en := fixtureFile(t, "voice-note-en.ogg")
	s.graph.AddMedia("voice-en", "audio/ogg", en)
	s.sarvam.FailNext(sarvamtest.Failure{Status: 503}, sarvamtest.Failure{Status: 503}, sarvamtest.Failure{Status: 503})
	const asha = "919876543210"
	s.send(t, asha, "wamid.O1", "text", "hi")
	s.expect(t, asha, "What is your name?")
	s.send(t, asha, "wamid.O2", "audio", "voice-en")
	s.expect(t, asha, "What is your name?", "Sorry, I couldn't listen to that. Could you type it?")
	var reason string
	_ = s.db.Pool.QueryRow(context.Background(), `SELECT understand_error FROM media WHERE understanding = 'failed'`).Scan(&reason)
	if !strings.Contains(reason, "sarvam") || !strings.Contains(reason, "503") {
		t.Fatalf("staff read %q", reason)
	}
	s.send(t, asha, "wamid.O3", "text", "Asha")
	s.expect(t, asha, "What is your name?", "Sorry, I couldn't listen to that. Could you type it?", "Thank you. Please send a photo of your appointment card.")
}

// A message sent right after a voice note waits for its transcript, so
// the two are answered in the order they were sent.
func TestVoiceNote_HoldsLaterMessagesInOrder(t *testing.T) {
	s := newVoiceSite(t, 0)
	en := fixtureFile(t, "voice-note-en.ogg")
	s.graph.AddMedia("voice-en", "audio/ogg", en)
	s.sarvam.Says(en, sarvamtest.Said{Text: "My name is Asha", Language: "en-IN"})
	const asha = "919876543210"
	s.send(t, asha, "wamid.Q1", "text", "hi")
	s.expect(t, asha, "What is your name?")
	release := s.sarvam.Hold()
	defer release()
	s.send(t, asha, "wamid.Q2", "audio", "voice-en")
	s.send(t, asha, "wamid.Q3", "text", "Monday please")
	waitFor(t, "the voice note at the speech service", func() bool { return s.heldCalls() > 0 })
	var processed int
	_ = s.db.Pool.QueryRow(context.Background(), `SELECT count(*) FROM messages WHERE direction = 'in' AND processed_at IS NOT NULL`).Scan(&processed)
	if processed != 1 {
		t.Fatalf("%d messages processed while the voice note is transcribed, want only the first", processed)
	}
	release()
	// The note answers the name; the text then reaches the card step
	// (no text model here: its fallback).
	s.expect(t, asha, "What is your name?", "Thank you. Please send a photo of your appointment card.", "A person will look at your card.")
	if said := s.variable(t, asha, "said"); said != "My name is Asha" {
		t.Fatalf("the name saved is %q", said)
	}
}

// A voice note whose transcript never comes holds its contact's messages
// for PARLEY_UNDERSTAND_HOLD at most, then goes on unheard.
func TestVoiceNote_HeldAtMostTheHold(t *testing.T) {
	s := newVoiceSite(t, time.Second)
	en := fixtureFile(t, "voice-note-en.ogg")
	s.graph.AddMedia("voice-en", "audio/ogg", en)
	const asha = "919876543210"
	s.send(t, asha, "wamid.T1", "text", "hi")
	s.expect(t, asha, "What is your name?")
	release := s.sarvam.Hold() // the service never answers in time
	defer release()
	s.send(t, asha, "wamid.T2", "audio", "voice-en")
	s.send(t, asha, "wamid.T3", "text", "Asha")
	s.expect(t, asha, "What is your name?", "Sorry, I couldn't listen to that. Could you type it?", "Thank you. Please send a photo of your appointment card.")
}

// heldCalls counts requests that reached the speech service.
func (s *voiceSite) heldCalls() int {
	return s.sarvam.Waiting()
}

// variable reads a variable of waID's open conversation.
func (s *voiceSite) variable(t *testing.T, waID, name string) string {
	t.Helper()
	crypto := newCryptoForTest(t)
	ctx := context.Background()
	found, err := store.NewContactStore(s.db, crypto).FindByPhone(ctx, "+"+waID)
	if err != nil || len(found) != 1 {
		t.Fatalf("contact %s: %v", waID, err)
	}
	conv, err := store.NewConversationStore(s.db, crypto).Open(ctx, nil, found[0].ID)
	if err != nil || conv == nil {
		t.Fatalf("no open conversation: %v", err)
	}
	return conv.Variables[name]
}

// Jobs run again (a crash replays them): a fetch run twice queues one
// transcription; a transcription run twice answers the contact once.
func TestVoiceNote_JobsRunAgainChangeNothing(t *testing.T) {
	s := newVoiceSite(t, 0)
	en := fixtureFile(t, "voice-note-en.ogg")
	s.graph.AddMedia("voice-en", "audio/ogg", en)
	s.sarvam.Says(en, sarvamtest.Said{Text: "My name is Asha", Language: "en-IN"})
	const asha = "919876543210"
	s.send(t, asha, "wamid.R1", "text", "hi")
	s.send(t, asha, "wamid.R2", "audio", "voice-en")
	want := []string{"What is your name?", "Thank you. Please send a photo of your appointment card."}
	s.expect(t, asha, want...)
	ctx := context.Background()
	var mediaID int64
	_ = s.db.Pool.QueryRow(ctx, `SELECT id FROM media`).Scan(&mediaID)
	calls := len(s.sarvam.Calls())
	for _, kind := range []string{"fetch_media", "understand_media"} {
		queue := map[string]string{"fetch_media": "default", "understand_media": "ai"}[kind]
		var id int64
		if err := s.db.Pool.QueryRow(ctx, `INSERT INTO river_job (kind, args, state, max_attempts, queue, priority, scheduled_at)
			VALUES ($1, jsonb_build_object('media_id', $2::bigint, 'provider', 'meta'), 'available', 3, $3, 1, now()) RETURNING id`,
			kind, mediaID, queue).Scan(&id); err != nil {
			t.Fatal(err)
		}
		waitFor(t, kind+" to run again", func() bool {
			var state string
			_ = s.db.Pool.QueryRow(ctx, `SELECT state FROM river_job WHERE id = $1`, id).Scan(&state)
			return state == "completed"
		})
	}
	waitFor(t, "the queue to settle", func() bool {
		var n int // the hold's own check stays scheduled, and finds nothing to do when it runs
		_ = s.db.Pool.QueryRow(ctx, `SELECT count(*) FROM river_job WHERE state NOT IN ('completed', 'discarded', 'cancelled')
			AND kind <> 'conversation_wait' AND NOT args ? 'held'`).Scan(&n)
		return n == 0
	})
	var understands int
	_ = s.db.Pool.QueryRow(ctx, `SELECT count(*) FROM river_job WHERE kind = 'understand_media' AND args->>'provider' IS NULL`).Scan(&understands)
	if got := len(s.sarvam.Calls()); understands != 1 || got != calls+1 {
		t.Fatalf("%d transcriptions queued by the fetches, %d Sarvam calls after the replays (was %d): want one queued, one more call (the replayed transcription)",
			understands, got, calls)
	}
	if got := s.replies(asha); strings.Join(got, "|") != strings.Join(want, "|") {
		t.Fatalf("after the replays the contact got %q", got)
	}
}

// With speech-to-text off, a voice note at a question asks for words, and
// staff read why it was not transcribed.
func TestVoiceNote_SpeechOffAsksForWordsAndSaysWhy(t *testing.T) {
	s := newVoiceSite(t, 0, withoutSpeech)
	s.graph.AddMedia("voice-en", "audio/ogg", fixtureFile(t, "voice-note-en.ogg"))
	const asha = "919876543210"
	s.send(t, asha, "wamid.F1", "text", "hi")
	s.send(t, asha, "wamid.F2", "audio", "voice-en")
	s.expect(t, asha, "What is your name?", "Sorry, I couldn't listen to that. Could you type it?")
	var why string
	_ = s.db.Pool.QueryRow(context.Background(), `SELECT understand_error FROM media WHERE understanding = 'failed'`).Scan(&why)
	if !strings.Contains(why, "speech-to-text is off") || len(s.sarvam.Calls()) != 0 {
		t.Fatalf("staff read %q; %d calls to Sarvam", why, len(s.sarvam.Calls()))
	}
}
