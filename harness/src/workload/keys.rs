//! Message keys per the scenario's `keys`, and the partition a key pins a message to.
//!
//! - `none`: no key and no partition; the client's partitioner spreads the messages.
//! - `round_robin`: the producer cycles over the topic's partitions (each instance starting at
//!   its own, `producer id mod partitions`), naming the partition explicitly and sending the key
//!   `partition-N` with it, so every partition gets the same share whatever partitioner the
//!   client has configured. An unthrottled producer skips partitions whose window is full
//!   (`window`), so the shares are equal while the partitions keep up.
//! - `random`: a random 16-hex-digit key per message from the producer's seeded generator; the
//!   client's partitioner maps it to a partition.

/// Where one message goes.
#[derive(Debug, PartialEq, Eq)]
pub struct Placement<'a> {
    pub key: Option<&'a [u8]>,
    pub partition: Option<i32>,
}

pub enum KeyChooser {
    None,
    RoundRobin {
        /// `partition-N`, indexed by partition.
        keys: Vec<Vec<u8>>,
        next_partition: usize,
    },
    Random {
        rng: fastrand::Rng,
        key: [u8; 16],
    },
}

impl KeyChooser {
    pub fn none() -> Self {
        Self::None
    }

    /// `partitions` is at least 1.
    pub fn round_robin(partitions: u32, producer: u32) -> Self {
        assert!(partitions > 0, "a topic has at least one partition");
        Self::RoundRobin {
            keys: (0..partitions)
                .map(|partition| format!("partition-{partition}").into_bytes())
                .collect(),
            next_partition: (producer % partitions) as usize,
        }
    }

    pub fn random(rng: fastrand::Rng) -> Self {
        Self::Random { rng, key: [0; 16] }
    }

    /// Moves a round-robin cycle on to the first partition from its place that `accepts`
    /// takes, and says whether there was one (if not, the cycle stays where it was). The other
    /// modes do not pick partitions: for them this is always true.
    pub fn advance_to_accepted(&mut self, accepts: impl Fn(i32) -> bool) -> bool {
        let Self::RoundRobin {
            keys,
            next_partition,
        } = self
        else {
            return true;
        };
        let count = keys.len();
        let accepted = (0..count)
            .map(|step| (*next_partition + step) % count)
            .find(|&partition| accepts(partition as i32));
        if let Some(partition) = accepted {
            *next_partition = partition;
        }
        accepted.is_some()
    }

    /// The next message's key and partition.
    pub fn next_placement(&mut self) -> Placement<'_> {
        match self {
            Self::None => Placement {
                key: None,
                partition: None,
            },
            Self::RoundRobin {
                keys,
                next_partition,
            } => {
                let partition = *next_partition;
                *next_partition = (partition + 1) % keys.len();
                Placement {
                    key: Some(&keys[partition]),
                    partition: Some(partition as i32),
                }
            }
            Self::Random { rng, key } => {
                const HEX_DIGITS: &[u8; 16] = b"0123456789abcdef";
                let mut bits = rng.u64(..);
                for digit in key.iter_mut() {
                    *digit = HEX_DIGITS[(bits & 0xf) as usize];
                    bits >>= 4;
                }
                Placement {
                    key: Some(&key[..]),
                    partition: None,
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_robin_cycles_over_every_partition_from_the_producers_own() {
        let mut chooser = KeyChooser::round_robin(3, 4);
        let partitions: Vec<_> = (0..6)
            .map(|_| chooser.next_placement().partition.unwrap())
            .collect();
        assert_eq!(partitions, [1, 2, 0, 1, 2, 0]);
        assert_eq!(
            chooser.next_placement(),
            Placement {
                key: Some(b"partition-1"),
                partition: Some(1)
            }
        );
    }

    #[test]
    fn round_robin_skips_refused_partitions_and_keeps_its_place_when_all_are() {
        let mut chooser = KeyChooser::round_robin(4, 0);
        let open = |partition| partition != 1;
        let partitions: Vec<_> = (0..4)
            .map(|_| {
                assert!(chooser.advance_to_accepted(open));
                chooser.next_placement().partition.unwrap()
            })
            .collect();
        assert_eq!(partitions, [0, 2, 3, 0]);
        assert!(!chooser.advance_to_accepted(|_| false));
        assert_eq!(chooser.next_placement().partition, Some(1));
        assert!(KeyChooser::none().advance_to_accepted(|_| false));
    }

    #[test]
    fn random_keys_follow_the_seed() {
        let keys = |seed| {
            let mut chooser = KeyChooser::random(fastrand::Rng::with_seed(seed));
            (0..3)
                .map(|_| chooser.next_placement().key.unwrap().to_vec())
                .collect::<Vec<_>>()
        };
        assert_eq!(keys(9), keys(9));
        assert_ne!(keys(9), keys(10));
        assert_ne!(keys(9)[0], keys(9)[1]);
    }

    #[test]
    fn no_keys_leave_the_partition_to_the_client() {
        let mut chooser = KeyChooser::none();
        assert_eq!(
            chooser.next_placement(),
            Placement {
                key: None,
                partition: None
            }
        );
    }
}
