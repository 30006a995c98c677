package main

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"
	"golang.org/x/term"
	"gorm.io/gorm"

	"github.com/parley-chat/parley/internal/accounts"
	"github.com/parley-chat/parley/internal/auth"
	"github.com/parley-chat/parley/internal/config"
	"github.com/parley-chat/parley/internal/store"
	"github.com/parley-chat/parley/models"
)

// firstAdminEmail is the account `parley dev` makes when there is none.
const firstAdminEmail = "admin@parley.local"

// ensureFirstAdmin makes an admin with a generated password when the local
// provider has no staff at all, and prints the credentials once.
func ensureFirstAdmin(ctx context.Context, cfg *config.Config, stderr io.Writer) error {
	db, err := store.Open(ctx, cfg.DatabaseURL, store.Options{})
	if err != nil {
		return err
	}
	defer db.Close()
	c, err := newCrypto(cfg, newLogger(stderr, cfg.LogLevel))
	if err != nil {
		return err
	}
	staff := store.NewStaffStore(db)
	if n, err := staff.Count(ctx); err != nil || n > 0 {
		return err
	}
	password := newPassword()
	hash, err := auth.HashPassword(password)
	if err != nil {
		return err
	}
	audit := store.NewAuditStore(db, c)
	e := &models.AuditEvent{Action: "staff.create", SubjectType: "staff",
		Details: map[string]any{"email_fp": audit.Fingerprint(firstAdminEmail), "role": string(models.RoleAdmin), "via": "parley dev"}}
	if err := audit.Within(ctx, e, func(tx *gorm.DB) error {
		admin, err := staff.CreateIn(ctx, tx, "", firstAdminEmail, models.RoleAdmin, hash)
		if admin != nil {
			e.SubjectID = admin.ID
		}
		return err
	}); err != nil {
		return err
	}
	fmt.Fprintf(stderr, "parley dev: made the first admin; sign in with\n    email:    %s\n    password: %s\n  (shown this once; `parley users set-password` changes it)\n", firstAdminEmail, password)
	return nil
}

// newPassword is 24 random characters.
func newPassword() string {
	b := make([]byte, 18)
	_, _ = rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

func usersCommand(getenv func(string) string, stdin io.Reader, stdout, stderr io.Writer) *cobra.Command {
	u := group("users", "Manage staff accounts (in Supabase mode through its admin API, with SUPABASE_SERVICE_ROLE_KEY)",
		"create, list, set-role, set-password, deactivate, reactivate")
	var email, role string
	var invite bool
	var audit *store.AuditStore
	var svc *accounts.Service // the one service the console and the API use too
	withStaff := func(cmd *cobra.Command, fn func(ctx context.Context, staff *store.StaffStore) error) error {
		cfg, db, c, err := openSealed(cmd.Context(), getenv, stderr)
		if err != nil {
			return err
		}
		defer db.Close()
		audit = store.NewAuditStore(db, c)
		staff := store.NewStaffStore(db)
		svc = &accounts.Service{Staff: staff, Local: true, Audit: audit, Via: "cli", Logger: newLogger(stderr, cfg.LogLevel)}
		if cfg.AuthMode == "supabase" {
			if cfg.SupabaseServiceRoleKey == "" {
				return errors.New("in Supabase mode these commands need SUPABASE_SERVICE_ROLE_KEY (Supabase Auth's admin API)")
			}
			svc.Local, svc.Remote = false, auth.NewGoTrue(cfg.SupabaseURL, cfg.SupabaseAnonKey, nil).Admin(cfg.SupabaseServiceRoleKey)
		}
		return fn(cmd.Context(), staff)
	}
	// within makes a change from the command line (no actor) in the
	// transaction of its audit entry: both or neither.
	within := func(ctx context.Context, action string, u *models.StaffUser, change func(tx *gorm.DB) error) error {
		e := &models.AuditEvent{Action: action, SubjectType: "staff", SubjectID: u.ID, Details: map[string]any{"via": "cli"}}
		return audit.Within(ctx, e, change)
	}
	byEmail := func(ctx context.Context, staff *store.StaffStore) (*models.StaffUser, error) {
		found, _, err := staff.ByEmail(ctx, email)
		return found, err
	}
	create := &cobra.Command{
		Use:   "create --email E --role R",
		Short: "Add a staff member; the password is read from the terminal, or a line of standard input",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return withStaff(cmd, func(ctx context.Context, _ *store.StaffStore) error {
				m := accounts.NewMember{Email: email, Role: models.Role(role)}
				switch {
				case invite && svc.Local:
					return errors.New("--invite needs Supabase mode; local accounts get a password")
				case !invite:
					password, err := readPassword(stdin, stderr)
					if err != nil {
						return err
					}
					if password == "" {
						return errors.New("give a password (or, in Supabase mode, --invite)")
					}
					m.Password = password
				}
				made, err := svc.Create(ctx, models.Actor{}, m)
				if err != nil {
					return err
				}
				fmt.Fprintf(stdout, "created %s (%s)\n", made.Email, made.Role)
				return nil
			})
		},
	}
	list := &cobra.Command{
		Use: "list", Short: "List the staff", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return withStaff(cmd, func(ctx context.Context, staff *store.StaffStore) error {
				tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
				fmt.Fprintln(tw, "EMAIL\tROLE\tACTIVE")
				after := ""
				for {
					page, err := staff.List(ctx, after, 100)
					if err != nil {
						return err
					}
					for _, s := range page {
						fmt.Fprintf(tw, "%s\t%s\t%v\n", s.Email, s.Role, s.Active)
					}
					if len(page) < 100 {
						return tw.Flush()
					}
					after = page[len(page)-1].Email
				}
			})
		},
	}
	setRole := &cobra.Command{
		Use: "set-role --email E --role R", Short: "Change a staff member's role (takes effect on their next request)", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return withStaff(cmd, func(ctx context.Context, staff *store.StaffStore) error {
				found, err := byEmail(ctx, staff)
				if err != nil {
					return err
				}
				to := models.Role(role)
				_, err = svc.Change(ctx, models.Actor{}, found.ID, &to, nil)
				return err
			})
		},
	}
	setPassword := &cobra.Command{
		Use: "set-password --email E", Short: "Set a staff member's password (read like create's)", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return withStaff(cmd, func(ctx context.Context, staff *store.StaffStore) error {
				found, err := byEmail(ctx, staff)
				if err != nil {
					return err
				}
				password, err := readPassword(stdin, stderr)
				if err != nil {
					return err
				}
				hash, err := auth.HashPassword(password)
				if err != nil {
					return err
				}
				if !svc.Local {
					return errors.New("in Supabase mode passwords are set at Supabase (the member resets theirs)")
				}
				return within(ctx, "staff.password_change", found, func(tx *gorm.DB) error {
					return staff.SetPasswordHash(ctx, tx, found.ID, hash)
				})
			})
		},
	}
	active := func(use, short string, to bool) *cobra.Command {
		return &cobra.Command{
			Use: use + " --email E", Short: short, Args: cobra.NoArgs,
			RunE: func(cmd *cobra.Command, _ []string) error {
				return withStaff(cmd, func(ctx context.Context, staff *store.StaffStore) error {
					found, err := byEmail(ctx, staff)
					if err != nil {
						return err
					}
					_, err = svc.Change(ctx, models.Actor{}, found.ID, nil, &to)
					return err
				})
			},
		}
	}
	deactivate := active("deactivate", "Stop a staff member's access (at once, whatever tokens they hold)", false)
	reactivate := active("reactivate", "Give a deactivated staff member access again", true)
	for _, c := range []*cobra.Command{create, setRole, setPassword, deactivate, reactivate} {
		c.Flags().StringVar(&email, "email", "", "the staff member's email")
		_ = c.MarkFlagRequired("email")
	}
	create.Flags().BoolVar(&invite, "invite", false, "Supabase mode: send an invitation instead of setting a password")
	for _, c := range []*cobra.Command{create, setRole} {
		c.Flags().StringVar(&role, "role", "", "admin, supervisor, agent or viewer")
		_ = c.MarkFlagRequired("role")
	}
	u.AddCommand(create, list, setRole, setPassword, deactivate, reactivate)
	return u
}

// readPassword reads a password without echo from a terminal, else one
// line of stdin.
func readPassword(stdin io.Reader, stderr io.Writer) (string, error) {
	if f, ok := stdin.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		fmt.Fprint(stderr, "Password: ")
		b, err := term.ReadPassword(int(f.Fd()))
		fmt.Fprintln(stderr)
		return string(b), err
	}
	line, err := bufio.NewReader(stdin).ReadString('\n')
	if err != nil && !errors.Is(err, io.EOF) {
		return "", err
	}
	return strings.TrimRight(line, "\r\n"), nil
}
