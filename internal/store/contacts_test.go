package store_test

import (
	"context"
	"sync"
	"testing"

	"github.com/parley-chat/parley/models"
)

func TestContactStore_FindOrCreate_OneContactPerNumberAndChannel(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	first, created, err := f.contacts.FindOrCreate(ctx, "whatsapp:+919876543210")
	if err != nil || !created {
		t.Fatalf("first FindOrCreate: created=%v err=%v", created, err)
	}
	if first.Address != "+919876543210" || first.Channel != models.ChannelWhatsApp || first.AddressInvalid {
		t.Fatalf("contact = %+v", first)
	}
	again, created, err := f.contacts.FindOrCreate(ctx, "whatsapp:+91 98765 43210")
	if err != nil || created || again.ID != first.ID {
		t.Fatalf("same number typed differently: id %d created=%v err=%v; want id %d", again.ID, created, err, first.ID)
	}
	sms, created, err := f.contacts.FindOrCreate(ctx, "+919876543210")
	if err != nil || !created || sms.ID == first.ID {
		t.Fatalf("SMS address: id %d created=%v err=%v; want a new contact", sms.ID, created, err)
	}
	found, err := f.contacts.FindByPhone(ctx, "098765 43210")
	if err != nil || len(found) != 2 {
		t.Fatalf("FindByPhone = %d contacts, %v; want both channels", len(found), err)
	}
}

func TestContactStore_FindOrCreate_KeepsAndFlagsAnUnparseableAddress(t *testing.T) {
	f := newFixture(t)
	c, created, err := f.contacts.FindOrCreate(context.Background(), "MYBANK")
	if err != nil || !created {
		t.Fatalf("FindOrCreate(MYBANK): %v", err)
	}
	got, err := f.contacts.Get(context.Background(), c.ID)
	if err != nil || got.Address != "MYBANK" || !got.AddressInvalid {
		t.Fatalf("Get = %+v, %v; want the raw address kept and flagged", got, err)
	}
	if _, _, err := f.contacts.FindOrCreate(context.Background(), "  "); models.ErrorCode(err) != models.EINVALID {
		t.Fatalf("empty address: %v, want EINVALID", err)
	}
}

func TestContactStore_FindOrCreate_ConcurrentCallsMakeOneContact(t *testing.T) {
	f := newFixture(t)
	const n = 20
	ids := make([]int64, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, _, err := f.contacts.FindOrCreate(context.Background(), "+14155550100")
			errs[i] = err
			if c != nil {
				ids[i] = c.ID
			}
		}()
	}
	wg.Wait()
	for i := range n {
		if errs[i] != nil || ids[i] != ids[0] {
			t.Fatalf("call %d: id %d err %v; want id %d", i, ids[i], errs[i], ids[0])
		}
	}
	var count int64
	f.db.Gorm.Raw("SELECT count(*) FROM contacts").Scan(&count)
	if count != 1 {
		t.Fatalf("%d contacts stored, want 1", count)
	}
}

func TestContactStore_SetName_RoundTripsHindi(t *testing.T) {
	f := newFixture(t)
	c := f.contact(t, "+919876543210", "आशा वर्मा")
	got, err := f.contacts.Get(context.Background(), c.ID)
	if err != nil || got.Name != "आशा वर्मा" {
		t.Fatalf("Get = %+v, %v", got, err)
	}
	if err := f.contacts.SetName(context.Background(), nil, 999999, "x"); models.ErrorCode(err) != models.ENOTFOUND {
		t.Fatalf("SetName on a missing contact: %v, want ENOTFOUND", err)
	}
}
