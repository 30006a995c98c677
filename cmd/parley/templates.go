package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/parley-chat/parley/internal/channel"
	"github.com/parley-chat/parley/internal/channel/meta"
	"github.com/parley-chat/parley/internal/channel/twilio"
	"github.com/parley-chat/parley/internal/config"
	"github.com/parley-chat/parley/internal/pipeline"
	"github.com/parley-chat/parley/internal/store"
	"github.com/parley-chat/parley/models"
)

// syncTimeout bounds `parley templates sync`: a few pages and an approval
// per Twilio template.
const syncTimeout = 2 * time.Minute

// templatesCommand reads the platforms' WhatsApp templates into the
// registry and lists it.
func templatesCommand(getenv func(string) string, stdout, stderr io.Writer) *cobra.Command {
	c := group("templates", "Sync WhatsApp templates from Meta and Twilio into the registry, and list them", "sync, list")
	c.AddCommand(&cobra.Command{
		Use:   "sync",
		Short: "Read the templates of Meta's WhatsApp Business Account (PARLEY_META_WABA_ID) and Twilio's Content API into the registry",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return templatesSync(cmd.Context(), getenv, stdout, stderr)
		},
	}, &cobra.Command{
		Use:   "list",
		Short: "List the registry's templates: name, language, provider, status, category, parameters, last sync",
		Args:  cobra.NoArgs,
		RunE:  func(cmd *cobra.Command, _ []string) error { return templatesList(cmd.Context(), getenv, stdout) },
	})
	return c
}

func templatesSync(ctx context.Context, getenv func(string) string, stdout, stderr io.Writer) error {
	cfg, db, c, err := openSealed(ctx, getenv, stderr)
	if err != nil {
		return err
	}
	defer db.Close()
	sources, err := templateSources(cfg)
	if err != nil {
		return err
	}
	if len(sources) == 0 {
		return &config.Error{Problems: []config.Problem{{Var: "PARLEY_META_WABA_ID", Reason: "is unset and Twilio is not configured: there is nowhere to read templates from",
			Fix: "set PARLEY_META_WABA_ID (with PARLEY_META_ACCESS_TOKEN) or PARLEY_TWILIO_ACCOUNT_SID"}}}
	}
	ctx, cancel := context.WithTimeout(ctx, syncTimeout)
	defer cancel()
	res, syncErr := pipeline.SyncTemplates(ctx, store.NewTemplateStore(db), sources)
	details := map[string]any{"via": "cli"}
	for provider, r := range res {
		fmt.Fprintf(stdout, "%s: %d templates listed, %d no longer there (marked gone)\n", provider, r.Seen, r.Gone)
		details[provider] = map[string]any{"listed": r.Seen, "gone": r.Gone}
	}
	if len(res) > 0 {
		if err := store.NewAuditStore(db, c).Record(context.WithoutCancel(ctx), &models.AuditEvent{Action: "templates.sync", SubjectType: "templates", Details: details}); err != nil {
			return errors.Join(syncErr, err)
		}
	}
	return syncErr
}

// templateSources are the platforms configured to list templates.
func templateSources(cfg *config.Config) (map[string]pipeline.TemplateSource, error) {
	sources := map[string]pipeline.TemplateSource{}
	if cfg.TwilioAccountSID != "" {
		tc, err := twilio.NewClient(twilio.Config{AccountSID: cfg.TwilioAccountSID, AuthToken: cfg.TwilioAuthToken, From: cfg.TwilioFrom,
			MessagingServiceSID: cfg.TwilioMessagingServiceSID, APIBaseURL: cfg.TwilioAPIBaseURL})
		if err != nil {
			return nil, err
		}
		sources[channel.Twilio] = tc
	}
	if cfg.MetaWABAID != "" {
		if cfg.MetaAccessToken == "" {
			return nil, &config.Error{Problems: []config.Problem{{Var: "PARLEY_META_ACCESS_TOKEN", Reason: "is required to read the templates of PARLEY_META_WABA_ID",
				Fix: "set a system user's access token with whatsapp_business_management"}}}
		}
		phoneID := cfg.MetaPhoneNumberID
		if phoneID == "" {
			phoneID = "-" // not used to list templates
		}
		mc, err := meta.NewClient(meta.Config{AccessToken: cfg.MetaAccessToken, PhoneNumberID: phoneID, BaseURL: cfg.MetaAPIBaseURL, WABAID: cfg.MetaWABAID})
		if err != nil {
			return nil, err
		}
		sources[channel.Meta] = mc
	}
	return sources, nil
}

func templatesList(ctx context.Context, getenv func(string) string, stdout io.Writer) error {
	_, db, err := openDatabase(ctx, getenv, config.Requirements{Database: true})
	if err != nil {
		return err
	}
	defer db.Close()
	list, err := store.NewTemplateStore(db).List(ctx)
	if err != nil {
		return err
	}
	if len(list) == 0 {
		fmt.Fprintln(stdout, "no templates: run `parley templates sync`")
		return nil
	}
	w := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "NAME\tLANGUAGE\tPROVIDER\tSTATUS\tCATEGORY\tPARAMETERS\tSYNCED")
	for _, t := range list {
		status := string(t.Status)
		if t.RejectedReason != "" {
			status += " (" + t.RejectedReason + ")"
		}
		params := strings.Join(t.Params(), ",")
		if params == "" {
			params = "-"
		}
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", t.Name, t.Language, t.Provider, status, t.Category, params, t.SyncedAt.UTC().Format(time.RFC3339))
	}
	return w.Flush()
}
