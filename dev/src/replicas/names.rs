//! Pod-like consumer names, as a Deployment's pods are named: `order-worker-<hash>-<suffix>`.
//! The hash stands for the ReplicaSet (one pod template), so the replicas started together
//! share it and a rolling restart's replacements share a new one; the suffix tells the pods of
//! one ReplicaSet apart. What an operator sees in `XINFO CONSUMERS` then looks like production.

/// Kubernetes' alphabet for generated name suffixes: no vowels (no words), no look-alikes.
const SUFFIX_ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";

/// One pod template's worth of names.
#[derive(Debug, Clone)]
pub struct ReplicaSet {
    hash: String,
}

impl ReplicaSet {
    /// A new template hash: 10 hex digits, random, so a run never reuses a previous run's names.
    pub fn new() -> Self {
        let hash = uuid::Uuid::new_v4().simple().to_string()[..10].to_owned();
        Self { hash }
    }

    /// A new pod name in this set: `order-worker-<hash>-<5 random characters>`.
    pub fn pod_name(&self) -> String {
        let random = uuid::Uuid::new_v4();
        let suffix: String = random.as_bytes()[..5]
            .iter()
            .map(|byte| char::from(SUFFIX_ALPHABET[usize::from(*byte) % SUFFIX_ALPHABET.len()]))
            .collect();
        format!("order-worker-{}-{suffix}", self.hash)
    }
}

impl Default for ReplicaSet {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_look_like_a_deployments_pods_and_share_their_replica_sets_hash() {
        let set = ReplicaSet::new();
        let (a, b) = (set.pod_name(), set.pod_name());
        for name in [&a, &b] {
            let parts: Vec<&str> = name.rsplitn(3, '-').collect();
            assert_eq!(parts.len(), 3, "{name}");
            let (suffix, hash, prefix) = (parts[0], parts[1], parts[2]);
            assert_eq!(prefix, "order-worker");
            assert_eq!(hash.len(), 10, "{name}");
            assert!(hash.chars().all(|c| c.is_ascii_hexdigit()), "{name}");
            assert_eq!(suffix.len(), 5, "{name}");
            assert!(
                suffix.bytes().all(|c| SUFFIX_ALPHABET.contains(&c)),
                "{name}"
            );
        }
        assert_eq!(a[..23], b[..23], "one ReplicaSet, one hash");
        assert_ne!(a, b);
        assert_ne!(
            ReplicaSet::new().pod_name()[..23],
            a[..23],
            "a new hash per set"
        );
    }
}
