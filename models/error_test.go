package models_test

import (
	"errors"
	"fmt"
	"testing"

	"github.com/parley-chat/parley/models"
)

func TestErrorCode_FindsWrappedCode(t *testing.T) {
	tests := []struct {
		name     string
		err      error
		wantCode string
		wantMsg  string
	}{
		{"nil", nil, "", ""},
		{"plain error is internal", errors.New("boom: secret detail"), models.EINTERNAL, "Internal error."},
		{"direct", models.Errorf(models.ENOTFOUND, "Contact %d not found.", 7), models.ENOTFOUND, "Contact 7 not found."},
		{"wrapped", fmt.Errorf("loading: %w", models.Errorf(models.EINVALID, "Bad phone.")), models.EINVALID, "Bad phone."},
		{"internal hides message", models.Wrap(errors.New("pq: x"), models.EINTERNAL, "db said x"), models.EINTERNAL, "Internal error."},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := models.ErrorCode(tt.err); got != tt.wantCode {
				t.Errorf("ErrorCode = %q, want %q", got, tt.wantCode)
			}
			if got := models.ErrorMessage(tt.err); got != tt.wantMsg {
				t.Errorf("ErrorMessage = %q, want %q", got, tt.wantMsg)
			}
		})
	}
}

func TestWrap_UnwrapsToCause(t *testing.T) {
	cause := errors.New("cause")
	if err := models.Wrap(cause, models.EUNAVAILABLE, "Database unavailable."); !errors.Is(err, cause) {
		t.Fatal("errors.Is(Wrap(cause), cause) = false")
	}
}
