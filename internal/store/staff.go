package store

import (
	"context"
	"strings"
	"time"

	"gorm.io/gorm"

	"github.com/parley-chat/parley/models"
)

type staffRow struct {
	ID           string `gorm:"primaryKey;default:gen_random_uuid()"`
	Email        string
	DisplayName  string
	Role         string
	PasswordHash *string
	Active       bool
	CreatedAt    time.Time
	UpdatedAt    time.Time
}

func (staffRow) TableName() string { return "staff_users" }

func (r *staffRow) model() *models.StaffUser {
	return &models.StaffUser{ID: r.ID, Email: r.Email, DisplayName: r.DisplayName, Role: models.Role(r.Role), Active: r.Active,
		CreatedAt: r.CreatedAt, UpdatedAt: r.UpdatedAt}
}

// StaffStore keeps the staff: who may use the console and the API, and in
// which role. In Supabase mode the id is the Supabase user's; in local mode
// the row also holds the bcrypt password hash.
type StaffStore struct{ db *DB }

// NewStaffStore returns the staff store.
func NewStaffStore(db *DB) *StaffStore { return &StaffStore{db: db} }

// Create adds a staff member; id "" makes a new one, passwordHash "" keeps
// none (Supabase mode). ECONFLICT when the email is taken.
func (s *StaffStore) Create(ctx context.Context, id, email string, role models.Role, passwordHash string) (*models.StaffUser, error) {
	return s.CreateIn(ctx, nil, id, email, role, passwordHash)
}

// CreateIn is Create inside tx when given (with its audit entry).
func (s *StaffStore) CreateIn(ctx context.Context, tx *gorm.DB, id, email string, role models.Role, passwordHash string) (*models.StaffUser, error) {
	if !role.Valid() {
		return nil, models.Errorf(models.EINVALID, "%q is not a role (admin, supervisor, agent or viewer).", role)
	}
	email = strings.TrimSpace(email)
	if !strings.Contains(email, "@") {
		return nil, models.Errorf(models.EINVALID, "An email address is required.")
	}
	row := staffRow{ID: id, Email: email, Role: string(role), Active: true}
	if passwordHash != "" {
		row.PasswordHash = &passwordHash
	}
	if tx == nil {
		tx = s.db.Gorm
	}
	g := tx.WithContext(ctx)
	if id == "" {
		g = g.Omit("ID")
	}
	if err := g.Create(&row).Error; err != nil {
		return nil, dbError(err, "A staff member with this email")
	}
	var made staffRow
	if err := tx.WithContext(ctx).Where("id = ?", row.ID).First(&made).Error; err != nil {
		return nil, dbError(err, "Staff member")
	}
	return made.model(), nil
}

// Get returns a staff member by id. ENOTFOUND when there is none.
func (s *StaffStore) Get(ctx context.Context, id string) (*models.StaffUser, error) {
	var row staffRow
	if err := s.db.Gorm.WithContext(ctx).Where("id = ?", id).First(&row).Error; err != nil {
		return nil, dbError(err, "Staff member")
	}
	return row.model(), nil
}

// ByEmail returns a staff member by email (any case) and their password
// hash ("" when none). ENOTFOUND when there is none.
func (s *StaffStore) ByEmail(ctx context.Context, email string) (*models.StaffUser, string, error) {
	var row staffRow
	if err := s.db.Gorm.WithContext(ctx).Where("lower(email) = lower(?)", strings.TrimSpace(email)).First(&row).Error; err != nil {
		return nil, "", dbError(err, "Staff member")
	}
	hash := ""
	if row.PasswordHash != nil {
		hash = *row.PasswordHash
	}
	return row.model(), hash, nil
}

// List returns up to limit staff members ordered by email, after the
// email after ("" from the start).
func (s *StaffStore) List(ctx context.Context, after string, limit int) ([]*models.StaffUser, error) {
	var rows []staffRow
	err := s.db.Gorm.WithContext(ctx).Where("lower(email) > lower(?)", after).Order("lower(email)").Limit(limit).Find(&rows).Error
	if err != nil {
		return nil, dbError(err, "Staff member")
	}
	out := make([]*models.StaffUser, len(rows))
	for i := range rows {
		out[i] = rows[i].model()
	}
	return out, nil
}

// ActiveAfter lists active staff members by id, those after the id
// given, at most limit: a walk over everyone that can resume where it
// stopped (the Supabase re-check's cursor).
func (s *StaffStore) ActiveAfter(ctx context.Context, after string, limit int) ([]*models.StaffUser, error) {
	var rows []staffRow
	q := s.db.Gorm.WithContext(ctx).Where("active")
	if after != "" { // "" is no uuid: from the first
		q = q.Where("id > ?", after)
	}
	err := q.Order("id").Limit(limit).Find(&rows).Error
	if err != nil {
		return nil, dbError(err, "Staff member")
	}
	out := make([]*models.StaffUser, len(rows))
	for i := range rows {
		out[i] = rows[i].model()
	}
	return out, nil
}

// Count returns how many staff members there are.
func (s *StaffStore) Count(ctx context.Context) (int64, error) {
	var n int64
	err := s.db.Gorm.WithContext(ctx).Model(&staffRow{}).Count(&n).Error
	return n, dbError(err, "Staff member")
}

// SetRole changes a staff member's role, inside tx when given (with its
// audit entry).
func (s *StaffStore) SetRole(ctx context.Context, tx *gorm.DB, id string, role models.Role) error {
	if !role.Valid() {
		return models.Errorf(models.EINVALID, "%q is not a role (admin, supervisor, agent or viewer).", role)
	}
	return s.update(ctx, tx, id, map[string]any{"role": string(role)})
}

// SetActive deactivates (or reactivates) a staff member.
func (s *StaffStore) SetActive(ctx context.Context, tx *gorm.DB, id string, active bool) error {
	return s.update(ctx, tx, id, map[string]any{"active": active})
}

// Deactivate marks a staff member inactive and ends their console
// sessions, in tx (with the caller's audit entry: all or nothing). The
// last active admin is never deactivated (ECONFLICT): nobody would be left
// to undo it. Both the console/API and the Supabase re-check go through
// here.
func (s *StaffStore) Deactivate(ctx context.Context, tx *gorm.DB, id string) error {
	if tx == nil {
		tx = s.db.Gorm
	}
	return tx.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		// Locking the active admins serialises two deactivations that
		// would each leave the other as the last one.
		var admins []string
		if err := tx.Raw(`SELECT id FROM staff_users WHERE role = ? AND active ORDER BY id FOR UPDATE`, string(models.RoleAdmin)).
			Scan(&admins).Error; err != nil {
			return dbError(err, "Staff member")
		}
		if len(admins) == 1 && admins[0] == id {
			return models.Errorf(models.ECONFLICT, "The last active admin cannot be deactivated.")
		}
		if err := s.update(ctx, tx, id, map[string]any{"active": false}); err != nil {
			return err
		}
		return revokeUserSessions(ctx, tx, id)
	})
}

// SetPasswordHash replaces a local staff member's password hash.
func (s *StaffStore) SetPasswordHash(ctx context.Context, tx *gorm.DB, id, hash string) error {
	return s.update(ctx, tx, id, map[string]any{"password_hash": hash})
}

func (s *StaffStore) update(ctx context.Context, tx *gorm.DB, id string, cols map[string]any) error {
	if tx == nil {
		tx = s.db.Gorm
	}
	cols["updated_at"] = time.Now().UTC()
	res := tx.WithContext(ctx).Model(&staffRow{}).Where("id = ?", id).Updates(cols)
	if res.Error != nil {
		return dbError(res.Error, "Staff member")
	}
	if res.RowsAffected == 0 {
		return models.Errorf(models.ENOTFOUND, "Staff member not found.")
	}
	return nil
}

// ForgetIn removes a staff member's account for good, inside tx when given
// (with its audit entry): their sessions end, and the row (which the audit
// log's entries keep pointing at) loses its email and password and stays
// deactivated.
func (s *StaffStore) ForgetIn(ctx context.Context, tx *gorm.DB, id string) error {
	if tx == nil {
		tx = s.db.Gorm
	}
	return tx.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		if err := tx.Exec(`DELETE FROM staff_sessions WHERE user_id = ?`, id).Error; err != nil {
			return dbError(err, "Session")
		}
		return s.update(ctx, tx, id, map[string]any{"email": "deleted-" + id + "@parley.invalid", "display_name": "",
			"password_hash": nil, "active": false})
	})
}
