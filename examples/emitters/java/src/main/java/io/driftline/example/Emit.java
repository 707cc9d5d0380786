package io.driftline.example;

import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.Random;
import org.apache.avro.Schema;
import org.apache.avro.generic.GenericData;
import org.apache.avro.generic.GenericDatumWriter;
import org.apache.avro.generic.GenericRecord;
import org.apache.avro.io.BinaryEncoder;
import org.apache.avro.io.EncoderFactory;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerConfig;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.common.serialization.ByteArraySerializer;
import org.apache.kafka.common.serialization.StringSerializer;

/**
 * How an inference service sends driftline its events (Java).
 *
 * <p>One prediction event per request and, once the truth is known, one outcome event, both in
 * the Confluent wire format (magic byte 0, the schema id, then Avro with the shipped
 * schemas/prediction.avsc and schemas/outcome.avsc), keyed by the trace id, with the request's
 * W3C traceparent header. The part to copy is {@link Emitter}; {@code main} simulates a short
 * stream to show it working: a fraud model scoring {@code -events} requests over the last hour of
 * event time, whose amount triples half-way through.
 *
 * <pre>mvn -q compile exec:java -Dexec.args="-bootstrap localhost:9092 [-schema-registry URL]"</pre>
 *
 * <p>With -schema-registry the shipped schemas are registered under the subjects
 * {@code <topic>-value} (as Confluent serializers do) and the ids the registry gives are written;
 * without one, ids 1 and 2 (the service then decodes with its own copy of the schemas,
 * kafka.local_schema_ids).
 */
public final class Emit {

  /** Sends prediction and outcome events; one per process, thread-safe like its producer. */
  public static final class Emitter implements AutoCloseable {
    private final KafkaProducer<String, byte[]> producer;
    private final Schema predictionSchema;
    private final Schema outcomeSchema;
    private final int predictionId;
    private final int outcomeId;
    private final String predictionsTopic;
    private final String outcomesTopic;

    /** The id the Schema Registry gives {@code schema} under {@code subject} (registered if new). */
    static int register(String registry, String subject, String schema) throws IOException {
      String body = "{\"schema\":" + quote(schema) + "}";
      HttpRequest req = HttpRequest.newBuilder(URI.create(registry.replaceAll("/+$", "") + "/subjects/" + subject + "/versions"))
          .header("Content-Type", "application/vnd.schemaregistry.v1+json")
          .POST(HttpRequest.BodyPublishers.ofString(body)).build();
      try {
        HttpResponse<String> resp = HttpClient.newHttpClient().send(req, HttpResponse.BodyHandlers.ofString());
        java.util.regex.Matcher m = java.util.regex.Pattern.compile("\"id\"\\s*:\\s*(\\d+)").matcher(resp.body());
        if (resp.statusCode() != 200 || !m.find()) {
          throw new IOException("registering " + subject + ": " + resp.statusCode() + " " + resp.body());
        }
        return Integer.parseInt(m.group(1));
      } catch (InterruptedException e) {
        Thread.currentThread().interrupt();
        throw new IOException(e);
      }
    }

    /** A JSON string literal of {@code s}. */
    static String quote(String s) {
      StringBuilder b = new StringBuilder("\"");
      for (char c : s.toCharArray()) {
        switch (c) {
          case '"' -> b.append("\\\"");
          case '\\' -> b.append("\\\\");
          case '\n' -> b.append("\\n");
          case '\r' -> b.append("\\r");
          case '\t' -> b.append("\\t");
          default -> b.append(c < 0x20 ? String.format("\\u%04x", (int) c) : String.valueOf(c));
        }
      }
      return b.append('"').toString();
    }

    public Emitter(String bootstrap, Path schemas, String registry, String predictionsTopic,
        String outcomesTopic) throws IOException {
      String prediction = Files.readString(schemas.resolve("prediction.avsc"));
      String outcome = Files.readString(schemas.resolve("outcome.avsc"));
      this.predictionSchema = new Schema.Parser().parse(prediction);
      this.outcomeSchema = new Schema.Parser().parse(outcome);
      boolean withRegistry = registry != null && !registry.isEmpty();
      this.predictionId = withRegistry ? register(registry, predictionsTopic + "-value", prediction) : 1;
      this.outcomeId = withRegistry ? register(registry, outcomesTopic + "-value", outcome) : 2;
      this.predictionsTopic = predictionsTopic;
      this.outcomesTopic = outcomesTopic;
      Properties p = new Properties();
      p.put(ProducerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
      p.put(ProducerConfig.ENABLE_IDEMPOTENCE_CONFIG, true); // a retried send is never written twice
      p.put(ProducerConfig.LINGER_MS_CONFIG, 20);
      this.producer = new KafkaProducer<>(p, new StringSerializer(), new ByteArraySerializer());
    }

    private static byte[] confluent(int schemaId, Schema schema, GenericRecord record) throws IOException {
      ByteArrayOutputStream out = new ByteArrayOutputStream();
      out.write(0);
      out.write(ByteBuffer.allocate(4).putInt(schemaId).array());
      BinaryEncoder enc = EncoderFactory.get().binaryEncoder(out, null);
      new GenericDatumWriter<GenericRecord>(schema).write(record, enc);
      enc.flush();
      return out.toByteArray();
    }

    private void send(String topic, String traceId, String spanId, byte[] value) {
      ProducerRecord<String, byte[]> rec = new ProducerRecord<>(topic, traceId, value);
      rec.headers().add("traceparent", ("00-" + traceId + "-" + spanId + "-01").getBytes(StandardCharsets.US_ASCII));
      producer.send(rec, (meta, err) -> {
        if (err != null) {
          System.err.println("not delivered: " + traceId + ": " + err);
        }
      });
    }

    /** features: name to Double, String, Boolean or null (missing); slices: dimension to value. */
    public void prediction(String traceId, String spanId, String modelId, String modelVersion,
        long eventTimeMs, Map<String, Object> features, Map<String, String> slices, double prediction,
        Double score) throws IOException {
      GenericRecord r = new GenericData.Record(predictionSchema);
      r.put("trace_id", traceId);
      r.put("model_id", modelId);
      r.put("model_version", modelVersion);
      r.put("event_time", eventTimeMs);
      r.put("features", features);
      r.put("slices", slices);
      r.put("prediction", prediction);
      r.put("score", score);
      r.put("shadow", false);
      send(predictionsTopic, traceId, spanId, confluent(predictionId, predictionSchema, r));
    }

    public void outcome(String traceId, String spanId, String modelId, long eventTimeMs, double label)
        throws IOException {
      GenericRecord r = new GenericData.Record(outcomeSchema);
      r.put("trace_id", traceId);
      r.put("model_id", modelId);
      r.put("event_time", eventTimeMs);
      r.put("label", label);
      send(outcomesTopic, traceId, spanId, confluent(outcomeId, outcomeSchema, r));
    }

    @Override
    public void close() {
      producer.flush();
      producer.close();
    }
  }

  public static void main(String[] args) throws IOException {
    Map<String, String> opt = new HashMap<>(Map.of("-bootstrap", "localhost:9092",
        "-schemas", "../../../schemas", "-schema-registry", "", "-predictions-topic", "predictions",
        "-outcomes-topic", "outcomes", "-events", "600", "-seed", "1"));
    for (int i = 0; i + 1 < args.length; i += 2) {
      if (!opt.containsKey(args[i])) {
        throw new IllegalArgumentException("unknown option " + args[i] + "; options: " + opt.keySet());
      }
      opt.put(args[i], args[i + 1]);
    }
    int events = Integer.parseInt(opt.get("-events"));
    Random rng = new Random(Long.parseLong(opt.get("-seed")));
    long step = 3_600_000L / events;
    long start = System.currentTimeMillis() - events * step;
    String[] devices = {"android", "ios", "web"};
    record Later(long at, String traceId, String spanId, double label) {}
    List<Later> outcomes = new ArrayList<>();
    try (Emitter em = new Emitter(opt.get("-bootstrap"), Path.of(opt.get("-schemas")),
        opt.get("-schema-registry"), opt.get("-predictions-topic"), opt.get("-outcomes-topic"))) {
      for (int i = 0; i < events; i++) {
        String traceId = String.format("%016x%016x", rng.nextLong(), rng.nextLong());
        String spanId = String.format("%016x", rng.nextLong());
        double amount = Math.exp(rng.nextGaussian() * 0.6 + 3.3) * (i >= events / 2 ? 3.0 : 1.0);
        String device = devices[rng.nextInt(3)];
        Double tenure = rng.nextDouble() < 0.02 ? null : Math.round(-Math.log(1 - rng.nextDouble()) * 400 * 100) / 100.0;
        double u = rng.nextDouble();
        String region = u < 0.5 ? "EU" : u < 0.85 ? "US" : "APAC";
        double z = -2.0 + 0.02 * amount + (device.equals("web") ? 0.4 : 0.0);
        double score = Math.round(1 / (1 + Math.exp(-z)) * 1e6) / 1e6;
        long t = start + i * step;
        Map<String, Object> features = new HashMap<>();
        features.put("amount", Math.round(amount * 1e4) / 1e4);
        features.put("tenure_days", tenure);
        features.put("device", device);
        em.prediction(traceId, spanId, "checkout-fraud", "v7", t, features, Map.of("region", region),
            score >= 0.5 ? 1 : 0, score);
        // the truth comes later (here: 30 s of event time), in a span of its own
        outcomes.add(new Later(t + 30_000, traceId, String.format("%016x", rng.nextLong()),
            rng.nextDouble() < score ? 1 : 0));
      }
      for (Later o : outcomes) {
        em.outcome(o.traceId(), o.spanId(), "checkout-fraud", o.at(), o.label());
      }
    }
    System.out.printf("sent %d predictions and %d outcomes%n", events, outcomes.size());
  }
}
