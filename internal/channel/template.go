package channel

import (
	"context"
	"sort"
	"strconv"

	"github.com/parley-chat/parley/models"
)

// Templates is the template registry as a sender reads it.
type Templates interface {
	// Find returns provider's template by name and language: ENOTFOUND
	// when the registry has none.
	Find(ctx context.Context, provider, name, language string) (*models.Template, error)
}

// Codes of template refusals Parley makes itself, before calling the
// platform (SendError.Code).
const (
	CodeTemplateMissing     = "template_missing"
	CodeTemplateNotApproved = "template_not_approved"
	CodeTemplateParams      = "template_params"
)

// CheckTemplate looks ref up in reg for provider and refuses it as the
// platform would, before calling it: missing, not approved, or its
// parameters not those the template takes. found is false (and err nil)
// when the registry has no such template. A registry that cannot be read
// is a retryable error.
func CheckTemplate(ctx context.Context, reg Templates, provider string, ref *models.TemplateRef) (t *models.Template, found bool, err *SendError) {
	t, e := reg.Find(ctx, provider, ref.Name, ref.Language)
	switch {
	case models.ErrorCode(e) == models.ENOTFOUND:
		return nil, false, nil
	case e != nil:
		return nil, false, &SendError{Provider: provider, Reason: "The template registry could not be read.", Retryable: true}
	}
	if why := t.Sendable(); why != "" {
		return t, true, &SendError{Provider: provider, Code: CodeTemplateNotApproved,
			Reason: "Template " + strconv.Quote(ref.Name) + " (" + ref.Language + ") " + why + ": choose an approved template, or wait for its approval."}
	}
	if perr := t.CheckParams(ref.Params); perr != nil {
		return t, true, &SendError{Provider: provider, Code: CodeTemplateParams, Reason: perr.Error() + " Fix the flow or request that fills it."}
	}
	return t, true, nil
}

// MissingTemplate is the refusal of a template the registry does not hold.
func MissingTemplate(provider string, ref *models.TemplateRef) *SendError {
	return &SendError{Provider: provider, Code: CodeTemplateMissing,
		Reason: "Template " + strconv.Quote(ref.Name) + " (" + ref.Language + ") is not in the template registry: create it on the platform, or run `parley templates sync`."}
}

// OrderedParams is a template's parameter values in the order the platform
// takes them: numbered ones by number; named ones by name (they carry
// their names, so order is only for a stable request).
func OrderedParams(params map[string]string) (keys []string, numbered bool) {
	numbered = true
	for k := range params {
		keys = append(keys, k)
		if _, err := strconv.Atoi(k); err != nil {
			numbered = false
		}
	}
	sort.Slice(keys, func(i, j int) bool {
		if numbered {
			a, _ := strconv.Atoi(keys[i])
			b, _ := strconv.Atoi(keys[j])
			return a < b
		}
		return keys[i] < keys[j]
	})
	return keys, numbered
}
