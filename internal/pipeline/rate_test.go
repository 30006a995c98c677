package pipeline_test

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/parley-chat/parley/internal/channel"
	"github.com/parley-chat/parley/internal/channel/twilio/twiliotest"
	"github.com/parley-chat/parley/internal/pipeline"
)

// The cap holds for the provider, not for each instance: two instances on
// one database send a burst no faster than one may.
func TestSend_RateCapHoldsUnderABurstAcrossInstances(t *testing.T) {
	e := newEnv(t)
	const rate, n = 20.0, 12
	notify := make(chan twiliotest.Sent, n)
	e.api.Notify = notify
	var instances []*pipeline.Pipeline
	for range 2 {
		p, err := pipeline.New(pipeline.Deps{
			DB: e.db, Crypto: e.crypto, Responder: pipeline.Ack{Text: "ack"}, Logger: slog.New(slog.DiscardHandler),
			Senders: map[string]channel.Sender{channel.Twilio: e.twilio},
			Config:  pipeline.Config{SendRate: rate, SendBurst: 1, FetchInterval: 100 * time.Millisecond},
		})
		if err != nil {
			t.Fatal(err)
		}
		instances = append(instances, p)
	}
	var burst []channel.Inbound
	for i := range n {
		burst = append(burst, sms(fmt.Sprintf("SM%d", i), fmt.Sprintf("+9198765432%02d", i), "hi"))
	}
	if _, err := instances[0].Ingest(context.Background(), burst); err != nil {
		t.Fatal(err)
	}
	for _, p := range instances {
		if err := p.Start(context.Background()); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = p.Stop(context.Background()) })
	}
	var times []time.Time
	for range n {
		<-notify
		times = append(times, time.Now())
	}
	// Twelve sends at 20 a second with a bucket of one take at least eleven
	// intervals of 50 ms, however many workers and instances are free.
	if span, least := times[n-1].Sub(times[0]), time.Duration(float64(n-1)/rate*float64(time.Second))*9/10; span < least {
		t.Fatalf("%d sends within %s; the cap of %.0f/s allows no fewer than %s", n, span, rate, least)
	}
}

func TestMetrics_QueueDepth(t *testing.T) {
	e := newEnv(t)
	p := e.pipeline(t, nil)
	reg := prometheus.NewRegistry()
	p.RegisterQueueDepth(reg)
	for _, in := range []channel.Inbound{sms("SM1", "+919876543210", "a"), sms("SM2", "+919812345678", "b")} {
		if _, err := p.Ingest(context.Background(), []channel.Inbound{in}); err != nil {
			t.Fatal(err)
		}
	}
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, f := range families {
		for _, m := range f.GetMetric() {
			var labels []string
			for _, l := range m.GetLabel() {
				labels = append(labels, l.GetName()+"="+l.GetValue())
			}
			got = append(got, fmt.Sprintf("%s{%s} %v", f.GetName(), strings.Join(labels, ","), m.GetGauge().GetValue()))
		}
	}
	if len(got) != 1 || got[0] != "parley_queue_jobs{kind=process_contact,state=available} 2" {
		t.Fatalf("queue depth = %v", got)
	}
}
