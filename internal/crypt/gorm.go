package crypt

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"sync"

	"gorm.io/gorm/schema"
)

// SerializerName is the GORM serializer of encrypted columns:
//
//	Name string `gorm:"column:name_enc;serializer:encrypted"`
//
// Supported field types are string, *string (nil is NULL) and []byte. The
// key ring travels in the statement's context (WithKeyRing); the record's
// identity is the model's table, the column and its primary key, which must
// be set before the value is written and selected before it is read.
const SerializerName = "encrypted"

var registerOnce sync.Once

// RegisterGORMSerializer makes the "encrypted" serializer known to GORM.
// It holds no keys, so registering it globally is safe; calling it again is
// harmless.
func RegisterGORMSerializer() {
	registerOnce.Do(func() { schema.RegisterSerializer(SerializerName, gormSerializer{}) })
}

type ringKey struct{}

// WithKeyRing returns a context carrying ring for the GORM serializer.
func WithKeyRing(ctx context.Context, ring *KeyRing) context.Context {
	return context.WithValue(ctx, ringKey{}, ring)
}

func ringFrom(ctx context.Context) (*KeyRing, error) {
	if r, ok := ctx.Value(ringKey{}).(*KeyRing); ok && r != nil {
		return r, nil
	}
	return nil, errors.New("crypt: no key ring in the statement's context (use crypt.WithKeyRing)")
}

type gormSerializer struct{}

func refOf(ctx context.Context, field *schema.Field, dst reflect.Value) (Ref, error) {
	pk := field.Schema.PrioritizedPrimaryField
	if pk == nil {
		return Ref{}, fmt.Errorf("crypt: %s has no primary key to bind %s to", field.Schema.Table, field.DBName)
	}
	v, zero := pk.ValueOf(ctx, dst)
	id, ok := v.(int64)
	if zero || !ok {
		return Ref{}, fmt.Errorf("crypt: %s.%s: the int64 primary key must be set before the encrypted column", field.Schema.Table, field.DBName)
	}
	return Ref{Table: field.Schema.Table, Column: field.DBName, ID: id}, nil
}

// Value encrypts the field for writing.
func (gormSerializer) Value(ctx context.Context, field *schema.Field, dst reflect.Value, fieldValue any) (any, error) {
	var plain []byte
	switch v := fieldValue.(type) {
	case string:
		plain = []byte(v)
	case *string:
		if v == nil {
			return nil, nil
		}
		plain = []byte(*v)
	case []byte:
		if v == nil {
			return nil, nil
		}
		plain = v
	default:
		return nil, fmt.Errorf("crypt: cannot encrypt a %T field", fieldValue)
	}
	ring, err := ringFrom(ctx)
	if err != nil {
		return nil, err
	}
	ref, err := refOf(ctx, field, dst)
	if err != nil {
		return nil, err
	}
	return ring.Encrypt(plain, ref), nil
}

// Scan decrypts a column read from the database into the field.
func (gormSerializer) Scan(ctx context.Context, field *schema.Field, dst reflect.Value, dbValue any) error {
	target := field.ReflectValueOf(ctx, dst)
	if dbValue == nil {
		target.Set(reflect.Zero(field.FieldType))
		return nil
	}
	ciphertext, ok := dbValue.([]byte)
	if !ok {
		return fmt.Errorf("crypt: %s.%s holds %T, want bytea", field.Schema.Table, field.DBName, dbValue)
	}
	ring, err := ringFrom(ctx)
	if err != nil {
		return err
	}
	ref, err := refOf(ctx, field, dst)
	if err != nil {
		return err
	}
	plain, err := ring.Decrypt(ciphertext, ref)
	if err != nil {
		return err
	}
	switch field.FieldType {
	case reflect.TypeOf(""):
		target.SetString(string(plain))
	case reflect.TypeOf((*string)(nil)):
		s := string(plain)
		target.Set(reflect.ValueOf(&s))
	case reflect.TypeOf([]byte(nil)):
		target.SetBytes(plain)
	default:
		return fmt.Errorf("crypt: cannot decrypt into a %s field", field.FieldType)
	}
	return nil
}
