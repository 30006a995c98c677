package models

// TemplateRef names an approved WhatsApp template message and the values of
// its parameters. WhatsApp lets a business write first, or again after the
// 24-hour customer-service window has closed, only with such a template; a
// message carrying one is sent as the template (Meta `type: template`,
// Twilio `ContentSid` + `ContentVariables`), while its Body keeps the text
// as the person reads it (for the console, search, and for SMS, which has
// no window and gets the text plainly).
//
// The parameters are personal (a name, an appointment time): a message's
// TemplateRef is stored encrypted with it.
type TemplateRef struct {
	// Name is the template's name as the platform knows it (Meta's
	// template name; for Twilio, the Content API's friendly name, the
	// registry resolving it to its ContentSid).
	Name string `json:"name"`
	// Language is the template's language code as the platform spells it
	// (Meta: "en", "en_US", "hi").
	Language string `json:"language"`
	// Params are the values of the template's parameters by name: "1",
	// "2", … for numbered ones ({{1}}), the parameter's name for named ones.
	Params map[string]string `json:"params,omitempty"`
}
