package handlers

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"strconv"
	"strings"

	"github.com/gofiber/fiber/v2"

	"github.com/parley-chat/parley/internal/auth"
	"github.com/parley-chat/parley/internal/pipeline"
	"github.com/parley-chat/parley/models"
	"github.com/parley-chat/parley/views"
)

// Starter starts conversations for phone numbers (pipeline.Pipeline): a
// staff action the console and the API both call.
type Starter interface {
	// StartConversation starts a flow for a number; with a key, a retry
	// answers the first result, replayed true.
	StartConversation(ctx context.Context, actor models.Actor, req pipeline.StartByPhone, key string) (*pipeline.StartResult, bool, error)
}

// Scheduler plans messages for later and cancels them
// (pipeline.Pipeline).
type Scheduler interface {
	ScheduleMessage(ctx context.Context, actor models.Actor, contactID int64, req pipeline.ScheduleRequest) (*pipeline.ScheduledResult, error)
	CancelScheduled(ctx context.Context, actor models.Actor, id int64) error
}

// starterOf is the inbox's staff actions as a Starter, when they start
// conversations.
func starterOf(in *Inbox) Starter {
	if in == nil {
		return nil
	}
	s, _ := in.Actions.(Starter)
	return s
}

// registerStart adds the console's form and the API's route that start
// conversations, for those who may override (supervisors and admins).
func registerStart(app *fiber.App, api fiber.Router, in *Inbox, signedIn fiber.Handler) {
	s := starterOf(in)
	if s == nil {
		return
	}
	may := require(auth.Override)
	if api != nil {
		api.Post("/conversations", may, apiStart(s))
		if sc, ok := s.(Scheduler); ok {
			api.Post("/contacts/:id<int>/scheduled", may, apiSchedule(sc))
			api.Delete("/scheduled/:id<int>", may, apiCancelScheduled(sc))
		}
	}
	if app != nil && signedIn != nil {
		app.Get("/start", signedIn, may, in.startForm())
		app.Post("/start", signedIn, may, in.start(s))
	}
}

// apiStart starts a conversation: 201 with what it did, or, for a request
// retried with its Idempotency-Key, 200 with the first answer.
func apiStart(s Starter) fiber.Handler {
	return func(c *fiber.Ctx) error {
		var req pipeline.StartByPhone
		if err := readJSON(c, &req); err != nil {
			return err
		}
		res, replayed, err := s.StartConversation(c.UserContext(), actorOf(c), req, c.Get("Idempotency-Key"))
		if err != nil {
			return err
		}
		status := fiber.StatusCreated
		if replayed {
			status = fiber.StatusOK
		}
		return c.Status(status).JSON(res)
	}
}

// startRows is how many variable rows the form offers beyond those filled.
const startRows = 3

func (in *Inbox) startForm() fiber.Handler {
	return func(c *fiber.Ctx) error {
		p := views.StartProps{Staff: badge(c), Channel: string(models.ChannelWhatsApp), Key: newFormKey()}
		in.startChoices(&p)
		return render(c, views.Start(p))
	}
}

// start takes the console's form: the conversation's page when it
// started, or the form again as it was typed, with the refusal beside the
// field it is about. The form's key makes a double submit one start.
func (in *Inbox) start(s Starter) fiber.Handler {
	return func(c *fiber.Ctx) error {
		p := views.StartProps{Staff: badge(c), Phone: c.FormValue("phone"), Channel: c.FormValue("channel"), Flow: c.FormValue("flow"),
			Template: c.FormValue("template"), Language: c.FormValue("template_language"), Params: c.FormValue("template_params"),
			Replace: c.FormValue("replace") == "on", Key: c.FormValue("key")}
		args := c.Request().PostArgs()
		names, values := args.PeekMulti("var_name"), args.PeekMulti("var_value")
		req := pipeline.StartByPhone{Phone: p.Phone, Channel: models.Channel(p.Channel),
			StartRequest: pipeline.StartRequest{Flow: p.Flow, Replace: p.Replace, Variables: map[string]string{}}}
		for i, n := range names {
			name, value := strings.TrimSpace(string(n)), ""
			if i < len(values) {
				value = strings.TrimSpace(string(values[i]))
			}
			if name == "" && value == "" {
				continue
			}
			p.Vars = append(p.Vars, views.StartVar{Name: name, Value: value})
			req.Variables[name] = value
		}
		if p.Template != "" {
			req.Template = &models.TemplateRef{Name: strings.TrimSpace(p.Template), Language: strings.TrimSpace(p.Language), Params: templateParams(p.Params)}
		}
		res, _, err := s.StartConversation(c.UserContext(), actorOf(c), req, p.Key)
		if err == nil {
			return c.Redirect("/contacts/"+strconv.FormatInt(res.ContactID, 10), fiber.StatusSeeOther)
		}
		status, message := classify(err)
		if status >= 500 || status == fiber.StatusForbidden {
			return err // the central handler's page, logged
		}
		var fe *pipeline.FieldError
		if errors.As(err, &fe) {
			p.Errors = map[string]string{fe.Field: message}
		} else {
			p.Problem = message
		}
		if p.Key == "" {
			p.Key = newFormKey()
		}
		in.startChoices(&p)
		c.Status(status)
		return render(c, views.Start(p))
	}
}

// startChoices fills the flows offered and the empty variable rows.
func (in *Inbox) startChoices(p *views.StartProps) {
	if in.Flows != nil {
		for _, f := range in.Flows.Flows() {
			p.Flows = append(p.Flows, f.ID)
		}
	}
	for range startRows {
		p.Vars = append(p.Vars, views.StartVar{})
	}
}

// templateParams reads a template's parameters, one a line, as its
// numbered parameters "1", "2", ….
func templateParams(text string) map[string]string {
	params := map[string]string{}
	n := 0
	for _, line := range strings.Split(text, "\n") {
		if line = strings.TrimSpace(line); line != "" {
			n++
			params[strconv.Itoa(n)] = line
		}
	}
	return params
}

// newFormKey is the idempotency key a form carries, so that submitting it
// twice starts one conversation.
func newFormKey() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	return "form-" + hex.EncodeToString(b)
}

// apiSchedule plans a message for a contact: 201 with its id and time.
func apiSchedule(sc Scheduler) fiber.Handler {
	return func(c *fiber.Ctx) error {
		var req pipeline.ScheduleRequest
		if err := readJSON(c, &req); err != nil {
			return err
		}
		res, err := sc.ScheduleMessage(c.UserContext(), actorOf(c), idParam(c), req)
		if err != nil {
			return err
		}
		return c.Status(fiber.StatusCreated).JSON(res)
	}
}

// apiCancelScheduled cancels a planned message that has not gone.
func apiCancelScheduled(sc Scheduler) fiber.Handler {
	return func(c *fiber.Ctx) error {
		id := idParam(c)
		if err := sc.CancelScheduled(c.UserContext(), actorOf(c), id); err != nil {
			return err
		}
		return c.JSON(fiber.Map{"scheduled_id": id, "status": "cancelled"})
	}
}
