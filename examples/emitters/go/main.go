// How an inference service sends driftline its events (Go: franz-go and
// hamba/avro).
//
// One prediction event per request and, once the truth is known, one
// outcome event, both in the Confluent wire format (magic byte 0, the
// schema id, then Avro with the shipped schemas/prediction.avsc and
// schemas/outcome.avsc), keyed by the trace id, with the request's W3C
// traceparent header. The part to copy is Emitter; main simulates a short
// stream to show it working: a fraud model scoring -events requests over
// the last hour of event time, whose amount triples half-way through.
//
//	go run . -bootstrap localhost:9092 [-schema-registry URL] [-schemas ../../../schemas] [-events 600]
//
// With -schema-registry the shipped schemas are registered under the
// subjects <topic>-value (as Confluent serializers do) and the ids the
// registry gives are written; without one, ids 1 and 2 (the service then
// decodes with its own copy of the schemas, kafka.local_schema_ids).
package main

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"flag"
	"fmt"
	"math"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/hamba/avro/v2"
	"github.com/twmb/franz-go/pkg/kgo"
)

// Prediction is schemas/prediction.avsc. A feature value is nil (missing),
// float64, string or bool.
type Prediction struct {
	TraceID      string            `avro:"trace_id"`
	ModelID      string            `avro:"model_id"`
	ModelVersion *string           `avro:"model_version"`
	EventTime    time.Time         `avro:"event_time"`
	Features     map[string]any    `avro:"features"`
	Slices       map[string]string `avro:"slices"`
	Prediction   any               `avro:"prediction"`
	Score        *float64          `avro:"score"`
	Shadow       bool              `avro:"shadow"`
}

// Outcome is schemas/outcome.avsc; Label is a float64 or a string (class).
type Outcome struct {
	TraceID   string    `avro:"trace_id"`
	ModelID   string    `avro:"model_id"`
	EventTime time.Time `avro:"event_time"`
	Label     any       `avro:"label"`
}

// register returns the id the Schema Registry gives schema under subject
// (registering it if new).
func register(registry, subject, schema string) (uint32, error) {
	body, _ := json.Marshal(map[string]string{"schema": schema})
	resp, err := http.Post(strings.TrimRight(registry, "/")+"/subjects/"+subject+"/versions",
		"application/vnd.schemaregistry.v1+json", bytes.NewReader(body))
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	var out struct {
		ID uint32 `json:"id"`
	}
	if resp.StatusCode != http.StatusOK {
		return 0, fmt.Errorf("registering %s: %s", subject, resp.Status)
	}
	err = json.NewDecoder(resp.Body).Decode(&out)
	return out.ID, err
}

type Emitter struct {
	client                          *kgo.Client
	predictionSchema, outcomeSchema avro.Schema
	predictionID, outcomeID         uint32
	predictionsTopic, outcomesTopic string
}

func NewEmitter(bootstrap, schemasDir, registry, predictionsTopic, outcomesTopic string) (*Emitter, error) {
	e := &Emitter{predictionID: 1, outcomeID: 2, predictionsTopic: predictionsTopic, outcomesTopic: outcomesTopic}
	for _, s := range []struct {
		name, topic string
		schema      *avro.Schema
		id          *uint32
	}{{"prediction", predictionsTopic, &e.predictionSchema, &e.predictionID},
		{"outcome", outcomesTopic, &e.outcomeSchema, &e.outcomeID}} {
		text, err := os.ReadFile(filepath.Join(schemasDir, s.name+".avsc"))
		if err != nil {
			return nil, err
		}
		if *s.schema, err = avro.Parse(string(text)); err != nil {
			return nil, err
		}
		if registry != "" {
			if *s.id, err = register(registry, s.topic+"-value", string(text)); err != nil {
				return nil, err
			}
		}
	}
	// idempotent by default in franz-go: a retried send is never written twice
	client, err := kgo.NewClient(kgo.SeedBrokers(bootstrap), kgo.ProducerLinger(20*time.Millisecond))
	if err != nil {
		return nil, err
	}
	e.client = client
	return e, nil
}

func confluent(id uint32, schema avro.Schema, v any) ([]byte, error) {
	body, err := avro.Marshal(schema, v)
	if err != nil {
		return nil, err
	}
	out := make([]byte, 5, 5+len(body))
	binary.BigEndian.PutUint32(out[1:], id)
	return append(out, body...), nil
}

func (e *Emitter) send(topic, traceID, spanID string, value []byte) {
	rec := &kgo.Record{Topic: topic, Key: []byte(traceID), Value: value,
		Headers: []kgo.RecordHeader{{Key: "traceparent", Value: []byte("00-" + traceID + "-" + spanID + "-01")}}}
	e.client.Produce(context.Background(), rec, func(r *kgo.Record, err error) {
		if err != nil {
			fmt.Fprintf(os.Stderr, "not delivered: %s: %v\n", r.Key, err)
			os.Exit(1)
		}
	})
}

func (e *Emitter) Prediction(traceID, spanID string, p Prediction) error {
	v, err := confluent(e.predictionID, e.predictionSchema, p)
	if err == nil {
		e.send(e.predictionsTopic, traceID, spanID, v)
	}
	return err
}

func (e *Emitter) Outcome(traceID, spanID string, o Outcome) error {
	v, err := confluent(e.outcomeID, e.outcomeSchema, o)
	if err == nil {
		e.send(e.outcomesTopic, traceID, spanID, v)
	}
	return err
}

func (e *Emitter) Close() error {
	defer e.client.Close()
	return e.client.Flush(context.Background())
}

func main() {
	bootstrap := flag.String("bootstrap", "localhost:9092", "Kafka bootstrap servers")
	schemas := flag.String("schemas", "../../../schemas", "the shipped Avro schemas")
	registry := flag.String("schema-registry", "", "e.g. http://localhost:8081")
	predictionsTopic := flag.String("predictions-topic", "predictions", "")
	outcomesTopic := flag.String("outcomes-topic", "outcomes", "")
	events := flag.Int("events", 600, "requests to simulate")
	seed := flag.Uint64("seed", 1, "")
	flag.Parse()

	em, err := NewEmitter(*bootstrap, *schemas, *registry, *predictionsTopic, *outcomesTopic)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	rng := rand.New(rand.NewPCG(*seed, 7))
	hex := func(bits int) string {
		if bits == 128 {
			return fmt.Sprintf("%016x%016x", rng.Uint64(), rng.Uint64())
		}
		return fmt.Sprintf("%016x", rng.Uint64())
	}
	version := "v7"
	step := int64(3_600_000 / *events)
	start := time.Now().UnixMilli() - int64(*events)*step
	type later struct {
		at              int64
		traceID, spanID string
		label           float64
	}
	var outcomes []later
	for i := 0; i < *events; i++ {
		traceID, spanID := hex(128), hex(64)
		amount := math.Exp(rng.NormFloat64()*0.6 + 3.3)
		if i >= *events/2 {
			amount *= 3
		}
		device := []string{"android", "ios", "web"}[rng.IntN(3)]
		var tenure any
		if rng.Float64() >= 0.02 {
			tenure = math.Round(rng.ExpFloat64()*400*100) / 100
		}
		u := rng.Float64()
		region := "EU"
		if u >= 0.85 {
			region = "APAC"
		} else if u >= 0.5 {
			region = "US"
		}
		z := -2.0 + 0.02*amount
		if device == "web" {
			z += 0.4
		}
		score := math.Round(1/(1+math.Exp(-z))*1e6) / 1e6
		predicted := 0.0
		if score >= 0.5 {
			predicted = 1
		}
		t := start + int64(i)*step
		err := em.Prediction(traceID, spanID, Prediction{
			TraceID: traceID, ModelID: "checkout-fraud", ModelVersion: &version,
			EventTime:  time.UnixMilli(t).UTC(),
			Features:   map[string]any{"amount": math.Round(amount*1e4) / 1e4, "tenure_days": tenure, "device": device},
			Slices:     map[string]string{"region": region},
			Prediction: predicted, Score: &score,
		})
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		label := 0.0
		if rng.Float64() < score {
			label = 1
		}
		// the truth comes later (here: 30 s of event time), in a span of its own
		outcomes = append(outcomes, later{t + 30_000, traceID, hex(64), label})
	}
	for _, o := range outcomes {
		if err := em.Outcome(o.traceID, o.spanID, Outcome{TraceID: o.traceID, ModelID: "checkout-fraud",
			EventTime: time.UnixMilli(o.at).UTC(), Label: o.label}); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
	}
	if err := em.Close(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	fmt.Printf("sent %d predictions and %d outcomes\n", *events, len(outcomes))
}
