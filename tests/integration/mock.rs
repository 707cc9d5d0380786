//! Fault injection with librdkafka's in-process mock cluster: the broker
//! goes down and comes back during consumption, and produce requests fail
//! (retriably) while alerts are being published. Nothing may be lost.

use std::time::Duration;

use driftline::config::{Config, Encoding, HumanDuration};
use driftline::engine::Engine;
use driftline::event::{Prediction, Scalar, Value};
use driftline::service::Service;
use rdkafka::Message;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::mocking::MockCluster;
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::types::{RDKafkaApiKey, RDKafkaRespErr};

use crate::util::{Rng, T0};

/// 4 h at 2 events/s, one feature, shifted by 1.5 sd from hour 3.
fn stream() -> Vec<Prediction> {
    let mut rng = Rng::new(11);
    (0..4 * 7200)
        .map(|i: i64| {
            let t = T0 + i * 500;
            let shift = if t - T0 >= 3 * 3_600_000 { 1.5 } else { 0.0 };
            Prediction {
                trace_id: format!("t{i}"),
                model_id: "m".into(),
                model_version: None,
                event_time: t,
                features: vec![("x".into(), Value::Number(rng.normal() + shift))],
                slices: vec![],
                prediction: Scalar::Number(0.0),
                score: None,
                shadow: false,
                prepared: Default::default(),
            }
        })
        .collect()
}

/// A service config on the mock cluster: JSON predictions, no outcomes,
/// 1 s idle timeout, checkpoints in a temporary directory (returned).
fn json_predictions_only(
    mock: &MockCluster<'_, impl rdkafka::ClientContext>,
    tag: &str,
) -> (Config, std::path::PathBuf) {
    let mut cfg = Config::default();
    cfg.kafka.bootstrap_servers = mock.bootstrap_servers();
    cfg.kafka.encoding = Encoding::Json;
    cfg.kafka.outcomes_topic = String::new();
    cfg.kafka.idle_timeout = HumanDuration::secs(1);
    // under the target dir (removed at the test's end; a failed test's stays for a look, and goes with the clone)
    let dir = crate::util::tempdir(&format!("mock-{tag}"));
    cfg.checkpoint.dir = dir.to_string_lossy().into_owned();
    (cfg, dir)
}

async fn produce(p: &FutureProducer, topic: &str, events: &[Prediction]) {
    let mut inflight = Vec::new();
    for (i, e) in events.iter().enumerate() {
        let v = serde_json::to_vec(e).unwrap();
        let key = format!("{}", i % 3);
        inflight.push(
            p.send_result(
                FutureRecord::to(topic)
                    .key(&key)
                    .partition((i % 3) as i32)
                    .payload(&v),
            )
            .unwrap(),
        );
    }
    for f in inflight {
        f.await.unwrap().unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broker_outage_and_produce_errors_lose_nothing() {
    let events = stream();
    // what the engine alone says, with no Kafka in between
    let mut e = Engine::new(Config::default());
    let mut want = Vec::new();
    for p in &events {
        e.apply_prediction(p).unwrap();
        want.extend(e.drain_alerts().map(|a| (a.alert_id, a.state)));
    }
    assert!(!want.is_empty(), "the stream must alert");

    let mock = MockCluster::new(1).unwrap();
    // checkpoints (the default start) are written while the broker fails
    let (mut cfg, dir) = json_predictions_only(&mock, "ckpt");
    cfg.checkpoint.interval = HumanDuration::secs(1);
    cfg.kafka
        .librdkafka
        .insert("message.timeout.ms".into(), "120000".into());
    mock.create_topic(&cfg.kafka.predictions_topic, 3, 1)
        .unwrap();
    mock.create_topic(&cfg.kafka.alerts_topic, 1, 1).unwrap();
    mock.create_topic(&cfg.kafka.dlq_topic, 1, 1).unwrap();
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", mock.bootstrap_servers())
        .set("enable.idempotence", "true")
        .set("message.timeout.ms", "120000")
        .create()
        .unwrap();
    produce(&producer, &cfg.kafka.predictions_topic, &events).await;
    // from here on the service is the only producer: these produce requests
    // are its alert deliveries, and they fail (retriably) at first
    mock.request_errors(
        RDKafkaApiKey::Produce,
        &[
            RDKafkaRespErr::RD_KAFKA_RESP_ERR_NOT_LEADER_FOR_PARTITION,
            RDKafkaRespErr::RD_KAFKA_RESP_ERR_REQUEST_TIMED_OUT,
            RDKafkaRespErr::RD_KAFKA_RESP_ERR_NOT_ENOUGH_REPLICAS,
            RDKafkaRespErr::RD_KAFKA_RESP_ERR_NOT_LEADER_FOR_PARTITION,
            RDKafkaRespErr::RD_KAFKA_RESP_ERR_REQUEST_TIMED_OUT,
        ],
    );
    // small fetches over a slow link: consumption takes seconds, so the outage lands mid-stream
    mock.broker_round_trip_time(1, Duration::from_millis(60))
        .unwrap();
    cfg.kafka
        .librdkafka
        .insert("max.partition.fetch.bytes".into(), "16384".into());

    // the service reads to the end of its partitions and stops by itself:
    // stopping it once the alerts are in could cut it short of the last
    // events on a loaded machine
    let (_tx, rx) = tokio::sync::watch::channel(false);
    let mut service = Service::new(cfg.clone()).unwrap();
    service.until_end = true;
    let svc = tokio::spawn(async move {
        service.run(rx).await.unwrap();
        service.stats.clone()
    });
    tokio::time::sleep(Duration::from_millis(1500)).await;
    mock.broker_down(1).unwrap();
    tokio::time::sleep(Duration::from_secs(3)).await;
    mock.broker_up(1).unwrap();
    let stats = tokio::time::timeout(Duration::from_secs(600), svc)
        .await
        .expect("the service reads to the end and stops")
        .unwrap();

    let reader: StreamConsumer = ClientConfig::new()
        .set("bootstrap.servers", mock.bootstrap_servers())
        .set("group.id", "reader")
        .set("auto.offset.reset", "earliest")
        .create()
        .unwrap();
    reader.subscribe(&[&cfg.kafka.alerts_topic]).unwrap();
    let mut got = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(90);
    while got.len() < want.len() && tokio::time::Instant::now() < deadline {
        if let Ok(Ok(m)) = tokio::time::timeout(Duration::from_secs(1), reader.recv()).await {
            let a = driftline::alert::avro::decode_alert(m.payload().unwrap()).unwrap();
            got.push((a.alert_id, a.state));
        }
    }
    // (librdkafka re-fetches a partition resumed after a pause from before
    // where the service got to: those redeliveries are skipped, not applied)
    assert_eq!(
        (stats.messages - stats.redelivered) as usize,
        events.len(),
        "every event applied once"
    );
    assert_eq!(stats.dead_lettered, 0);
    assert_eq!(got, want, "alerts lost or changed by the faults");
    assert!(stats.alerts_published as usize >= want.len());
    assert!(stats.checkpoints >= 1, "no checkpoint written: {stats:?}");
    assert_eq!(stats.checkpoint_failures, 0);
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_model_spread_over_partitions_is_reported_split_with_state_per_partition() {
    let events: Vec<Prediction> = stream().into_iter().take(3000).collect();
    let mock = MockCluster::new(1).unwrap();
    let (mut cfg, dir) = json_predictions_only(&mock, "split");
    cfg.kafka.state_per = driftline::config::StatePer::Partition;
    mock.create_topic(&cfg.kafka.predictions_topic, 3, 1)
        .unwrap();
    mock.create_topic(&cfg.kafka.alerts_topic, 1, 1).unwrap();
    mock.create_topic(&cfg.kafka.dlq_topic, 1, 1).unwrap();
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", mock.bootstrap_servers())
        .create()
        .unwrap();
    // one model on every partition: what state_per = "partition" cannot merge
    produce(&producer, &cfg.kafka.predictions_topic, &events).await;
    let (_tx, rx) = tokio::sync::watch::channel(false);
    let mut service = Service::new(cfg).unwrap();
    service.until_end = true;
    let stats = tokio::time::timeout(Duration::from_secs(60), async move {
        service.run(rx).await.unwrap();
        (service.stats.clone(), service.engine_stats())
    })
    .await
    .expect("the service reads to the end and stops");
    assert_eq!(stats.0.messages as usize, events.len());
    assert_eq!(stats.1.predictions as usize, events.len());
    assert_eq!(stats.0.split_models, 1, "the split model is reported once");
    let _ = std::fs::remove_dir_all(&dir);
}

/// A checkpoint body of about `size` bytes (the engine part is opaque here).
fn body_of(cfg: &Config, size: usize, tag: u8) -> driftline::checkpoint::Body {
    driftline::checkpoint::Body {
        written_at_ms: tag as i64,
        crate_version: "test".into(),
        config_fingerprint: driftline::checkpoint::config_fingerprint(cfg),
        group: "g".into(),
        offsets: vec![driftline::checkpoint::PartitionOffset {
            topic: "p".into(),
            partition: 0,
            next_offset: tag as i64,
            source: 0,
        }],
        engine: (0..size).map(|i| (i as u8) ^ tag).collect(),
        origins: Vec::new(),
    }
}

#[test]
fn checkpoint_topic_keeps_chunks_and_survives_a_write_cut_short() {
    use driftline::checkpoint::topic::{CHUNK, TopicStore};
    use driftline::checkpoint::{Store, encode};
    let mock = MockCluster::new(1).unwrap();
    let mut cfg = Config::default();
    cfg.kafka.bootstrap_servers = mock.bootstrap_servers();
    cfg.checkpoint.store = driftline::config::CheckpointStore::Kafka;
    // chunks on partition 0, manifests on partition 1
    mock.create_topic(&cfg.checkpoint.topic, 2, 1).unwrap();
    let mut store = Store::open(&cfg).unwrap();
    let name = store.name("g", &[("predictions".to_string(), 2)]);
    assert_eq!(name.len(), "g/".len() + 16);
    let other = store.name("g", &[("predictions".to_string(), 1)]);
    assert!(
        store.read_many(std::slice::from_ref(&name), &cfg)[0]
            .as_ref()
            .unwrap()
            .is_none(),
        "nothing written yet"
    );

    // three chunks, then one (the slot's stale chunks are deleted), then
    // two; and another name: each read gives the newest of its own name
    store
        .write(&name, &encode(&body_of(&cfg, 2 * CHUNK + 10, 1)).unwrap())
        .unwrap();
    store
        .write(&name, &encode(&body_of(&cfg, 100, 2)).unwrap())
        .unwrap();
    store
        .write(&name, &encode(&body_of(&cfg, CHUNK + 5, 3)).unwrap())
        .unwrap();
    store
        .write(&other, &encode(&body_of(&cfg, 10, 9)).unwrap())
        .unwrap();
    // a fresh store (another member) reads what this one wrote
    let mut reader = Store::open(&cfg).unwrap();
    let got = reader.read_many(&[name.clone(), other.clone()], &cfg);
    let a = got[0].as_ref().unwrap().as_ref().unwrap();
    assert_eq!(a.offsets[0].next_offset, 3);
    assert_eq!(a.engine, body_of(&cfg, CHUNK + 5, 3).engine);
    assert_eq!(
        got[1].as_ref().unwrap().as_ref().unwrap().offsets[0].next_offset,
        9
    );

    // a member that died mid-write: chunks of the next slot, no manifest
    let producer: rdkafka::producer::BaseProducer = ClientConfig::new()
        .set("bootstrap.servers", mock.bootstrap_servers())
        .create()
        .unwrap();
    for i in 0..2 {
        producer
            .send(
                rdkafka::producer::BaseRecord::to(&cfg.checkpoint.topic)
                    .key(&format!("{name}/c1/{i}"))
                    .payload(&b"half-written"[..])
                    .partition(0),
            )
            .unwrap();
    }
    rdkafka::producer::Producer::flush(&producer, Duration::from_secs(10)).unwrap();
    let mut reader = Store::open(&cfg).unwrap();
    let back = reader
        .read_many(std::slice::from_ref(&name), &cfg)
        .remove(0)
        .unwrap()
        .unwrap();
    assert_eq!(
        back.offsets[0].next_offset, 3,
        "the last complete checkpoint"
    );
    // the reader writes on and the command's listing sees both names
    reader
        .write(&name, &encode(&body_of(&cfg, 50, 4)).unwrap())
        .unwrap();
    let mut lister = TopicStore::new(
        &cfg.checkpoint.topic,
        driftline::kafka::client_config(&cfg.kafka),
    )
    .unwrap();
    let listed = lister.list("g", &cfg).unwrap();
    let next: Vec<i64> = listed
        .iter()
        .map(|(_, r)| r.as_ref().unwrap().as_ref().unwrap().0.offsets[0].next_offset)
        .collect();
    assert_eq!(listed.len(), 2);
    assert!(next.contains(&4) && next.contains(&9), "{next:?}");
}

/// A busy HTTP port is a start-up error (exit 2 on the command line), not a
/// service running without its health endpoints; the demo says so too
/// instead of printing another process's URL.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_busy_http_port_fails_the_start() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let mock = MockCluster::new(1).unwrap();
    let (mut cfg, dir) = json_predictions_only(&mock, "busy-port");
    cfg.http.listen = addr.clone();
    let mut service = Service::new(cfg).unwrap();
    let (_tx, rx) = tokio::sync::watch::channel(false);
    let err = tokio::time::timeout(Duration::from_secs(30), service.run(rx))
        .await
        .expect("the service must not start")
        .unwrap_err();
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(err.exit_code(), 2);
    assert!(err.to_string().contains(&addr), "{err}");

    let o = crate::util::run(&["demo", "--listen", &addr, "--duration", "1s"]);
    assert_eq!(o.status.code(), Some(2), "{}", crate::util::stderr(&o));
    let e = crate::util::stderr(&o);
    assert!(e.contains(&addr) && e.contains("--listen"), "{e}");
    assert!(!e.contains("dashboard at"), "{e}");
}
