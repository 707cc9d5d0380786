//! Flow control across partitions in event time: a partition far ahead of
//! the slowest active one waits for it (paused), and reads on once the
//! others have caught up to half the allowed skew. The service and the
//! router pace their input partitions with the same rule.

use rdkafka::TopicPartitionList;
use rdkafka::consumer::{Consumer, ConsumerContext};
use rdkafka::error::KafkaResult;

/// What a partition should do next.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Pace {
    Pause,
    Resume,
    Keep,
}

/// The skew rule: `max_skew_ms` of event time ahead of the slowest active
/// partition pauses; back within half of it resumes; without both times
/// (nothing delivered yet, or no active partition) a paused one resumes.
#[derive(Clone, Copy, Debug)]
pub struct Pacer {
    pub max_skew_ms: i64,
}

impl Pacer {
    pub fn pace(&self, paused: bool, mine: Option<i64>, slowest: Option<i64>) -> Pace {
        match (mine, slowest) {
            (Some(mine), Some(slow)) => {
                if !paused && mine - slow > self.max_skew_ms {
                    Pace::Pause
                } else if paused && mine - slow <= self.max_skew_ms / 2 {
                    Pace::Resume
                } else {
                    Pace::Keep
                }
            }
            _ if paused => Pace::Resume,
            _ => Pace::Keep,
        }
    }
}

/// Pauses or resumes one partition.
pub fn set_paused<C: ConsumerContext, K: Consumer<C>>(
    consumer: &K,
    topic: &str,
    partition: i32,
    paused: bool,
) -> KafkaResult<()> {
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition(topic, partition);
    if paused {
        consumer.pause(&tpl)
    } else {
        consumer.resume(&tpl)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pauses_past_the_skew_and_resumes_within_half() {
        let p = Pacer { max_skew_ms: 100 };
        assert_eq!(p.pace(false, Some(200), Some(100)), Pace::Keep);
        assert_eq!(p.pace(false, Some(201), Some(100)), Pace::Pause);
        assert_eq!(p.pace(true, Some(160), Some(100)), Pace::Keep);
        assert_eq!(p.pace(true, Some(150), Some(100)), Pace::Resume);
        assert_eq!(p.pace(true, None, Some(100)), Pace::Resume);
        assert_eq!(p.pace(true, Some(500), None), Pace::Resume);
        assert_eq!(p.pace(false, Some(500), None), Pace::Keep);
    }
}
