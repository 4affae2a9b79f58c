//! Which streams the worker reads: the topics, their stream keys, the group, and where each
//! stream's dead letters go.

use std::collections::BTreeMap;
use std::sync::OnceLock;

use anyhow::{bail, Context};

use super::{DEFAULT_GROUP, DEFAULT_GROUP_START_ID, DEFAULT_STREAM};
use crate::topics::{self, Catalogue, StreamKey, Topic};

/// Which stream and group, and who we are in it.
#[derive(Clone, Debug, clap::Args)]
pub struct StreamConfig {
    /// Stream key: the Dapr topic name.
    #[arg(long, env = "STREAM", default_value = DEFAULT_STREAM)]
    pub stream: String,
    /// Consumer group, shared by all replicas (Dapr component: consumerID, the app-id).
    #[arg(long = "group", env = "CONSUMER_GROUP", default_value = DEFAULT_GROUP)]
    pub group: String,
    /// This replica's consumer name [default: $POD_NAME, else the hostname]. Unlike Dapr, every
    /// replica has its own, so XPENDING shows which pod holds what.
    #[arg(long = "consumer", env = "CONSUMER_NAME")]
    pub consumer: Option<String>,
    /// Where undecodable entries go [default: <stream>.deadletter; in a Redis Cluster
    /// {<stream>}.deadletter, in the stream's slot].
    #[arg(long, env = "DEAD_LETTER_STREAM")]
    pub dead_letter_stream: Option<String>,
    /// Where a newly created group starts: `0` replays the retained stream (Dapr's behaviour),
    /// `$` takes only new entries.
    #[arg(long, env = "GROUP_START_ID", default_value = DEFAULT_GROUP_START_ID)]
    pub group_start_id: String,
}

impl StreamConfig {
    /// Settings for `stream` with every other field at its default.
    pub fn for_stream(stream: impl Into<String>) -> Self {
        Self {
            stream: stream.into(),
            group: DEFAULT_GROUP.to_owned(),
            consumer: None,
            dead_letter_stream: None,
            group_start_id: DEFAULT_GROUP_START_ID.to_owned(),
        }
    }

    /// The consumer name: `--consumer`/`CONSUMER_NAME`, else `POD_NAME`, else the hostname.
    pub fn consumer_name(&self) -> String {
        self.consumer
            .clone()
            .filter(|name| !name.is_empty())
            .or_else(|| {
                std::env::var("POD_NAME")
                    .ok()
                    .filter(|name| !name.is_empty())
            })
            .unwrap_or_else(|| gethostname::gethostname().to_string_lossy().into_owned())
    }

    /// The dead-letter stream: `--dead-letter-stream`, else `<stream>.deadletter`.
    pub fn dead_letter_stream(&self) -> String {
        self.dead_letter_stream
            .clone()
            .unwrap_or_else(|| format!("{}.deadletter", self.stream))
    }
}

/// Which topics `run` consumes, and where their streams are. A stream's key is its topic's
/// name, as Dapr writes it, unless renamed by the topic's own setting (namespaced deployments,
/// tests); `topics::BASE`'s is `STREAM`. Topics are resolved through a [`Catalogue`]: the
/// crate's own, and any [`Topics::serve`] adds.
#[derive(Clone, Debug)]
pub struct Topics {
    /// `TOPICS`: the topics to consume, in order.
    pub names: Vec<String>,
    /// Each topic's stream key set by its own setting, by topic name.
    streams: BTreeMap<&'static str, String>,
    catalogue: Catalogue,
}

/// The id of the `TOPICS` argument, and its value's name in `--help`.
const NAMES: &str = "names";
const NAMES_VALUE: &str = "NAMES";

/// Every topic the worker serves, comma-separated: `TOPICS`' default.
fn default_topics() -> &'static str {
    static DEFAULT: OnceLock<String> = OnceLock::new();
    DEFAULT.get_or_init(|| known().join(","))
}

/// The crate's topics' names, in `ALL`'s order.
fn known() -> Vec<&'static str> {
    topics::ALL.iter().map(|t| t.name()).collect()
}

/// The crate's topics with a stream setting of their own, and that setting's env and flag.
fn own_settings() -> impl Iterator<Item = (&'static dyn Topic, &'static str, &'static str)> {
    topics::ALL
        .into_iter()
        .filter_map(|topic| match topic.stream_key() {
            StreamKey::Own { env, flag } => Some((topic, env, flag)),
            StreamKey::Base => None,
        })
}

impl clap::Args for Topics {
    fn augment_args(cmd: clap::Command) -> clap::Command {
        let names = clap::Arg::new(NAMES)
            .long("topics")
            .env("TOPICS")
            .value_name(NAMES_VALUE)
            .value_delimiter(',')
            .action(clap::ArgAction::Append)
            .default_value(default_topics())
            .value_parser(parse_topic)
            .help(
                "Topics to consume, comma-separated. A subset lets an operator move one topic \
                 at a time off Dapr while its sidecar still serves the others",
            );
        own_settings().fold(cmd.arg(names), |cmd, (topic, env, flag)| {
            cmd.arg(
                clap::Arg::new(flag)
                    .long(flag)
                    .env(env)
                    .value_name(env)
                    .default_value(topic.name())
                    .help(format!("Stream key of `{}`", topic.name())),
            )
        })
    }

    fn augment_args_for_update(cmd: clap::Command) -> clap::Command {
        Self::augment_args(cmd)
    }
}

impl clap::FromArgMatches for Topics {
    fn from_arg_matches(matches: &clap::ArgMatches) -> Result<Self, clap::Error> {
        let names = matches.get_many::<String>(NAMES).into_iter().flatten();
        let streams = own_settings()
            .filter_map(|(topic, _, flag)| {
                let key = matches.get_one::<String>(flag)?;
                Some((topic.name(), key.clone()))
            })
            .collect();
        Ok(Self {
            names: names.cloned().collect(),
            streams,
            catalogue: Catalogue::default(),
        })
    }

    fn update_from_arg_matches(&mut self, matches: &clap::ArgMatches) -> Result<(), clap::Error> {
        *self = Self::from_arg_matches(matches)?;
        Ok(())
    }
}

pub(crate) fn parse_topic(name: &str) -> Result<String, String> {
    match topics::by_name(name.trim()) {
        Some(topic) => Ok(topic.name().to_owned()),
        None => Err(format!("unknown topic (known: {})", known().join(", "))),
    }
}

impl Topics {
    /// Only `topics::BASE`, on `stream`; every other topic's stream, if one is added, named
    /// `<stream>.<topic>` so that tests sharing a Redis never share a key.
    pub fn stream_only(stream: &str) -> Self {
        let streams = own_settings()
            .map(|(topic, _, _)| (topic.name(), format!("{stream}.{}", topic.name())))
            .collect();
        Self {
            names: vec![topics::BASE.to_owned()],
            streams,
            catalogue: Catalogue::default(),
        }
    }

    /// These topics and `topic` (defined outside the crate, say), consumed from `stream`.
    pub fn serve(mut self, topic: &'static dyn Topic, stream: impl Into<String>) -> Self {
        self.catalogue = self.catalogue.with(topic);
        self.streams.insert(topic.name(), stream.into());
        self.names.push(topic.name().to_owned());
        self
    }

    /// Every topic these settings can subscribe to.
    pub fn catalogue(&self) -> &Catalogue {
        &self.catalogue
    }

    /// The stream key of the topic named `topic`: its own setting's, else for a topic read from
    /// `STREAM` `base`, else the topic's name.
    pub fn stream_key(&self, topic: &str, base: &str) -> String {
        if let Some(key) = self.streams.get(topic) {
            return key.clone();
        }
        match self.catalogue.by_name(topic).map(|t| t.stream_key()) {
            Some(StreamKey::Base) => base.to_owned(),
            _ => topic.to_owned(),
        }
    }

    /// `topic`'s subscription with these settings, whether or not TOPICS lists it.
    pub fn subscription(
        &self,
        topic: &str,
        base: &StreamConfig,
        keyspace: Keyspace,
    ) -> anyhow::Result<Subscription> {
        let only = Self {
            names: vec![topic.to_owned()],
            ..self.clone()
        };
        let subscriptions = only.subscriptions(base, keyspace)?;
        subscriptions.into_iter().next().context("one topic")
    }

    /// One subscription per topic, in `TOPICS` order (repeats dropped), each a copy of `base`
    /// (group, consumer, dead-letter override) on its topic's stream. `DEAD_LETTER_STREAM` names one
    /// stream: with several topics it is refused rather than shared by all. In a cluster, each
    /// dead-letter stream is in its stream's slot (see [`Keyspace`]).
    pub fn subscriptions(
        &self,
        base: &StreamConfig,
        keyspace: Keyspace,
    ) -> anyhow::Result<Vec<Subscription>> {
        let mut subscriptions: Vec<Subscription> = Vec::new();
        for name in &self.names {
            let Some(topic) = self.catalogue.by_name(name) else {
                bail!("unknown topic {name:?} in TOPICS");
            };
            if subscriptions.iter().any(|s| s.topic.name() == topic.name()) {
                continue;
            }
            let stream = keyspace.place(StreamConfig {
                stream: self.stream_key(topic.name(), &base.stream),
                ..base.clone()
            })?;
            subscriptions.push(Subscription { topic, stream });
        }
        if subscriptions.is_empty() {
            bail!("TOPICS is empty: name at least one topic");
        }
        if subscriptions.len() > 1 && base.dead_letter_stream.is_some() {
            bail!(
                "DEAD_LETTER_STREAM names one stream, but TOPICS lists {}: unset it (each topic's \
                 dead letters go to <stream>.deadletter)",
                subscriptions.len()
            );
        }
        Ok(subscriptions)
    }
}

/// The setting that names `topic`'s stream.
pub fn stream_setting(topic: &dyn Topic) -> &'static str {
    match topic.stream_key() {
        StreamKey::Own { env, .. } => env,
        StreamKey::Base => "STREAM",
    }
}

/// Whether a stream and its dead-letter stream must share a slot. The worker moves an entry to
/// the dead letters and acks it in one MULTI, and `replay --dead-letter` moves it back in one
/// script: atomic, so nothing is lost or doubled between the two keys. A Redis Cluster runs
/// those only on keys of one slot, hence the hash tag in its default dead-letter name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Keyspace {
    /// One server, or a Sentinel-managed master: every key together.
    Single,
    /// A Redis Cluster: keys spread by hash slot.
    Cluster,
}

impl Keyspace {
    /// The keyspace REDIS_URL points at.
    pub fn of(redis_url: &str) -> anyhow::Result<Self> {
        Ok(match super::ClusterUrl::parse(redis_url)? {
            Some(_) => Self::Cluster,
            None => Self::Single,
        })
    }

    /// `stream` with its dead-letter stream placed: in a cluster, `{<stream>}.deadletter`
    /// unless set (or `<stream>.deadletter` when the stream's key has a hash tag of its own),
    /// and one set in another slot is refused.
    pub fn place(self, mut stream: StreamConfig) -> anyhow::Result<StreamConfig> {
        if self == Self::Single {
            return Ok(stream);
        }
        let slot = |key: &str| redis::cluster_routing::Slot::for_key(key);
        let dead_letter = match stream.dead_letter_stream.take() {
            Some(name) => name,
            None if has_hash_tag(&stream.stream) => format!("{}.deadletter", stream.stream),
            None => format!("{{{}}}.deadletter", stream.stream),
        };
        if slot(&dead_letter) != slot(&stream.stream) {
            bail!(
                "DEAD_LETTER_STREAM {dead_letter:?} is not in the slot of stream {:?}: in a Redis \
                 Cluster they must share one, as {{{}}}.deadletter does (or unset it)",
                stream.stream,
                stream.stream
            );
        }
        stream.dead_letter_stream = Some(dead_letter);
        Ok(stream)
    }
}

/// Whether Redis Cluster hashes `key` by a `{tag}` of it rather than the whole key: the first
/// `{` followed, later, by a `}` with something between.
fn has_hash_tag(key: &str) -> bool {
    key.split_once('{')
        .and_then(|(_, after)| after.split_once('}'))
        .is_some_and(|(tag, _)| !tag.is_empty())
}

/// One topic consumed: its stream, the group and its dead-letter stream.
#[derive(Clone, Debug)]
pub struct Subscription {
    pub topic: &'static dyn Topic,
    pub stream: StreamConfig,
}

#[cfg(test)]
mod tests;
