package handlers

import (
	"strconv"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/parley-chat/parley/internal/auth"
	"github.com/parley-chat/parley/internal/chart"
	"github.com/parley-chat/parley/internal/engine"
	"github.com/parley-chat/parley/models"
	"github.com/parley-chat/parley/views"
)

// flow shows one flow as a map (nodes in layers from the start, edges
// labelled) with its funnel over a range: how many conversations started
// then reached each node and went on. ?contact=ID highlights the node
// that contact's latest conversation is at: a read of their state,
// audited as the contact page is.
func (in *Inbox) flow(a *Access) fiber.Handler {
	return func(c *fiber.Ctx) error {
		var flow *engine.Flow
		for _, f := range in.Flows.Flows() {
			if f.ID == c.Params("id") {
				flow = f
			}
		}
		if flow == nil {
			return models.Errorf(models.ENOTFOUND, "There is no such flow.")
		}
		p := views.FlowProps{Staff: badge(c), Flow: summaryOf(flow), Start: flow.Start, Outline: flow.Outline()}
		m := chart.FlowMap{Title: "Map of flow " + flow.ID, Start: flow.Start}
		if in.Counts != nil {
			if err := in.funnel(c, flow, &p, &m); err != nil {
				return err
			}
			if err := in.position(c, a, flow, &p, &m); err != nil {
				return err
			}
		}
		for _, n := range p.Outline {
			mn := chart.MapNode{ID: n.ID, Kind: n.Kind}
			for _, e := range n.Edges {
				mn.Edges = append(mn.Edges, chart.MapEdge{When: e.When, To: e.To})
			}
			if f, ok := p.Funnel[n.ID]; ok {
				mn.Reached, mn.Left = f.Reached, f.Left
			}
			m.Nodes = append(m.Nodes, mn)
		}
		p.Map = m.SVG()
		return render(c, views.Flow(p))
	}
}

// funnel counts the flow's conversations that started in the range the
// request asks for (7 days unless given), node by node.
func (in *Inbox) funnel(c *fiber.Ctx, flow *engine.Flow, p *views.FlowProps, m *chart.FlowMap) error {
	name, from, to, err := rangeOf(c, time.Now())
	if err != nil {
		return err
	}
	counts, err := in.Counts.Funnel(c.UserContext(), flow.ID, from, to)
	if err != nil {
		return err
	}
	p.Range, p.From, p.To, p.Funnel = name, from.Format(time.DateOnly), to.AddDate(0, 0, -1).Format(time.DateOnly), map[string]views.FunnelCount{}
	for _, n := range counts {
		p.Funnel[n.Node] = views.FunnelCount{Reached: n.Reached, Left: n.Reached - n.Stayed}
	}
	m.Counted = true
	return nil
}

// position highlights the node of the contact the request names, after
// auditing the read.
func (in *Inbox) position(c *fiber.Ctx, a *Access, flow *engine.Flow, p *views.FlowProps, m *chart.FlowMap) error {
	s := c.Query("contact")
	if s == "" {
		return nil
	}
	id, err := strconv.ParseInt(s, 10, 64)
	if err != nil || id <= 0 {
		return models.Errorf(models.EINVALID, "contact is a contact's id.")
	}
	if !auth.Can(principal(c).Role, auth.ReadConversations) {
		return models.Errorf(models.EFORBIDDEN, "Your role may not read conversations.")
	}
	if err := a.audit(c, "contact.view", "contact", s, map[string]any{"via": "flow_map"}); err != nil {
		return err
	}
	pos, err := in.Counts.PositionOf(c.UserContext(), id)
	if err != nil {
		return err
	}
	p.ContactID = id
	p.ContactFlow, p.ContactStatus = pos.Flow, string(pos.Status)
	if pos.Flow == flow.ID {
		p.Current, m.Current = pos.Node, pos.Node
	}
	return nil
}
