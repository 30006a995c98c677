package store

import (
	"context"
	"fmt"
	"sync"

	"gorm.io/gorm"
)

// idBlock is the number of ids one nextval reserves; the tables' identity
// sequences step by this much (see migrations/00001_core.sql).
const idBlock = 64

// idAllocator hands out row ids before insert, because ciphertexts are bound
// to their row id. One nextval reserves a block of idBlock ids; several
// instances take separate blocks, so ids are unique but only roughly ordered
// across instances.
type idAllocator struct {
	table string
	mu    sync.Mutex
	cur   int64
	end   int64 // exclusive
}

func newIDAllocator(table string) *idAllocator {
	return &idAllocator{table: table}
}

// Next returns an id no one else will get, reserving a block through db
// (the caller's transaction, when it has one: nextval is never rolled back,
// and a second connection could deadlock a full pool) when it needs one.
func (a *idAllocator) Next(ctx context.Context, db *gorm.DB) (int64, error) {
	return a.next(func() (int64, error) {
		var start int64
		if err := db.WithContext(ctx).Raw("SELECT nextval(pg_get_serial_sequence(?, 'id'))", a.table).Scan(&start).Error; err != nil {
			return 0, fmt.Errorf("reserve %s ids: %w", a.table, err)
		}
		return start, nil
	})
}

// next hands out the next id of the current block, reserving a new block
// with reserve (which returns its first id) when it runs out.
func (a *idAllocator) next(reserve func() (int64, error)) (int64, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.cur == a.end {
		start, err := reserve()
		if err != nil {
			return 0, err
		}
		a.cur, a.end = start, start+idBlock
	}
	id := a.cur
	a.cur++
	return id, nil
}
