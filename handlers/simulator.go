package handlers

import (
	"strings"
	"unicode/utf8"

	"github.com/gofiber/fiber/v2"

	"github.com/parley-chat/parley/internal/channel"
	"github.com/parley-chat/parley/internal/channel/simulator"
	"github.com/parley-chat/parley/models"
	"github.com/parley-chat/parley/views"
)

// simulator shows the member's chat with the flows as a test contact.
func (in *Inbox) simulator(a *Access) fiber.Handler {
	return func(c *fiber.Ctx) error {
		p, err := in.simulatorProps(c, a)
		if err != nil {
			return err
		}
		return render(c, views.Simulator(p))
	}
}

// simulate takes one message from the test contact in through the same
// ingest as a platform's webhook; the flow's answer arrives by the same
// processing and send path, and the live view shows it.
func (in *Inbox) simulate(a *Access) fiber.Handler {
	return func(c *fiber.Ctx) error {
		text := strings.TrimSpace(c.FormValue("text"))
		switch {
		case text == "":
			return models.Errorf(models.EINVALID, "Write something to send.")
		case utf8.RuneCountInString(text) > 4096:
			return models.Errorf(models.EINVALID, "A message holds at most 4096 characters.")
		}
		number := simulator.NumberFor(principal(c).UserID)
		if err := a.audit(c, "simulator.send", "simulator", "", nil); err != nil {
			return err
		}
		in1 := channel.Inbound{Provider: channel.Simulator, ProviderMessageID: simulator.NewID(),
			From: simulator.Address(number), To: channel.Simulator, Body: text}
		if _, err := in.Simulator.Ingest(c.UserContext(), []channel.Inbound{in1}); err != nil {
			return err
		}
		if c.Get("HX-Request") != "true" {
			return c.Redirect("/simulator", fiber.StatusSeeOther)
		}
		p, err := in.simulatorProps(c, a)
		if err != nil {
			return err
		}
		return render(c, views.SimulatorSent(p))
	}
}

// simulatorProps reads the member's test contact and its messages (a view
// of a contact, audited as one), if it has written yet.
func (in *Inbox) simulatorProps(c *fiber.Ctx, a *Access) (views.SimulatorProps, error) {
	p := views.SimulatorProps{Staff: badge(c), Number: simulator.NumberFor(principal(c).UserID)}
	if in.Flows != nil {
		if flows := in.Flows.Flows(); len(flows) > 0 { // the default first, as the library orders them
			p.Default = flows[0].ID
		}
	}
	found, err := in.Contacts.FindByPhone(c.UserContext(), p.Number)
	if err != nil {
		return p, err
	}
	for _, ct := range found {
		if ct.Channel == models.ChannelSimulator {
			if p.Chat, err = in.contactPropsOf(c, a, ct.ID, viewPane); err != nil {
				return p, err
			}
		}
	}
	p.Chat.Staff = p.Staff
	return p, nil
}
